"""What a relay keeps, behind one port: inboxes, mirror segments and blobs.

A session (`covey.relay.session`) checks a request's form, its signature
and its rate, and turns it into one *action* below: everything in an action
is already checked except what needs the stored state (a write token's hash
against the ones registered, a quota, an expiry). A store carries out one
action atomically (`RelayStore.execute`: one transaction in a database, so
several relay processes sharing one cannot pass a quota together) and
returns its result, or raises the `RelayRefused` the device will be told.

A refused action changes nothing, but for what time did: items that
expired, and inboxes idle too long, are deleted wherever an action meets
them (and by `Expire`, run now and then), refused or not.

Tokens arrive here hashed (the session hashes them), so a store holds no
token, only hashes of high-entropy tokens: a database lookup by hash may
take time that depends on the hash, which tells nothing about a token.
The in-memory store compares hashes in constant time all the same.

`MemoryStore` is the reference implementation, for tests and the
simulator; the relay's database stores pass the same conformance tests.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from covey.errors import (
    RelayInboxFull,
    RelayNotAllowed,
    RelayNothingThere,
    RelaySegmentFull,
)
from covey.relay.limits import DEFAULT_LIMITS, RelayLimits

# --- actions ------------------------------------------------------------------


@dataclass(frozen=True)
class InboxWriters:
    """Set an inbox's write-token hashes: its owner asked (`create`: it may be new)."""

    box: bytes
    hashes: tuple[bytes, ...]
    create: bool


@dataclass(frozen=True)
class InboxPut:
    box: bytes
    writer: bytes  # the hash of the write token presented
    item: bytes
    expires: int


@dataclass(frozen=True)
class InboxFetch:
    """Items after `after` (an item number), oldest first: its owner asked."""

    box: bytes
    after: int


@dataclass(frozen=True)
class InboxAck:
    """Delete these items: its owner asked."""

    box: bytes
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class MirrorPut:
    """An item for a segment (its ID derived from the write token presented)."""

    segment: bytes
    item: bytes
    expires: int
    create: bool


@dataclass(frozen=True)
class MirrorGet:
    segment: bytes
    after: int


@dataclass(frozen=True)
class BlobPut:
    """A blob, counted against its segment (its write token presented); the
    segment is made if new only for a connection with the access secret."""

    segment: bytes
    blob_id: bytes  # drawn by the session
    blob: bytes
    expires: int
    create: bool = False


@dataclass(frozen=True)
class BlobGet:
    blob_id: bytes


@dataclass(frozen=True)
class Expire:
    """Delete what expired: items, blobs, idle inboxes, empty old segments.

    Its `Done.count` is for logs only, and differs between stores: what is
    expired but not yet deleted is never answered (every action deletes or
    skips what expired where it looks), so a store may delete it later and
    in bulk (PostgreSQL drops a day's partition whole, and counts nothing
    of it).
    """


Action = InboxWriters | InboxPut | InboxFetch | InboxAck | MirrorPut | MirrorGet | BlobPut | BlobGet

# --- results ------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Where a put went: the item's number in its inbox or segment."""

    number: int


@dataclass(frozen=True)
class BlobStored:
    """A blob put: the ID it is kept under."""

    blob_id: bytes


@dataclass(frozen=True)
class Items:
    """Items read: (number, bytes, expires) oldest first, and whether more wait."""

    items: tuple[tuple[int, bytes, int], ...]
    more: bool


@dataclass(frozen=True)
class Done:
    """The action had no answer but that it was done (`count`: how many it touched)."""

    count: int = 0


@dataclass(frozen=True)
class Blob:
    data: bytes


Result = Stored | BlobStored | Items | Done | Blob

#: The method each store carries an action out with (the same names in
#: every store, so that they read side by side).
HANDLERS: Final[dict[type, str]] = {
    InboxWriters: "_writers",
    InboxPut: "_inbox_put",
    InboxFetch: "_inbox_fetch",
    InboxAck: "_inbox_ack",
    MirrorPut: "_mirror_put",
    MirrorGet: "_mirror_get",
    BlobPut: "_blob_put",
    BlobGet: "_blob_get",
    Expire: "_expire",
}


def handler(action: object) -> str:
    """The name of the store method for `action` (TypeError if it is none)."""
    name = HANDLERS.get(type(action))
    if name is None:
        raise TypeError(f"not a relay action: {action!r}")
    return name


class RelayStore(Protocol):
    """The port every relay store implements (in memory, SQLite, PostgreSQL)."""

    limits: RelayLimits

    def execute(self, action: Action | Expire, now: int) -> Result:
        """Carry out one action atomically, or raise the RelayRefused to answer."""
        ...


# --- in memory ------------------------------------------------------------------

#: An expiry later than any (the `soonest` of a holder with no items).
NEVER: Final = 1 << 62


@dataclass
class _Inbox:
    writers: tuple[bytes, ...]
    touched: int
    items: OrderedDict[int, tuple[bytes, int]] = field(default_factory=OrderedDict)
    next_number: int = 1
    size: int = 0
    #: No item expires before this (so most actions scan nothing).
    soonest: int = NEVER


@dataclass
class _Segment:
    touched: int
    items: OrderedDict[int, tuple[bytes, int]] = field(default_factory=OrderedDict)
    next_number: int = 1
    #: Bytes of its items and blobs (blobs count against the segment's quota).
    size: int = 0
    blobs: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    soonest: int = NEVER


def matches(writer: bytes, registered: tuple[bytes, ...]) -> bool:
    """Whether a presented write-token hash is one of those registered."""
    found = False
    for candidate in registered:  # (every one compared: constant time in their number)
        found |= hmac.compare_digest(writer, candidate)
    return found


class MemoryStore:
    """Every relay object in dicts; one action at a time (the reference store)."""

    def __init__(self, limits: RelayLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.inboxes: dict[bytes, _Inbox] = {}
        self.segments: dict[bytes, _Segment] = {}
        #: Blob ID -> the segment whose write token put it.
        self.blob_segments: dict[bytes, bytes] = {}

    def execute(self, action: Action | Expire, now: int) -> Result:
        handle: Callable[[Any, int], Result] = getattr(self, handler(action))
        return handle(action, now)

    # --- inboxes

    def _live_inbox(self, box: bytes, now: int) -> _Inbox | None:
        inbox = self.inboxes.get(box)
        if inbox is not None and inbox.touched + self.limits.inbox_idle <= now:
            self._drop_inbox(box)
            return None
        return inbox

    def _drop_inbox(self, box: bytes) -> None:
        del self.inboxes[box]

    def _writers(self, action: InboxWriters, now: int) -> Result:
        inbox = self._live_inbox(action.box, now)
        if inbox is None:
            if not action.create:
                raise RelayNotAllowed()
            self.inboxes[action.box] = _Inbox(action.hashes, now)
        else:
            inbox.writers = action.hashes
            inbox.touched = now
        return Done(len(action.hashes))

    def _inbox_put(self, action: InboxPut, now: int) -> Result:
        inbox = self._live_inbox(action.box, now)
        if inbox is None or not matches(action.writer, inbox.writers):
            raise RelayNotAllowed()
        self._expire_items(inbox, now)
        limits = self.limits
        if (
            len(inbox.items) >= limits.inbox_items
            or inbox.size + len(action.item) > limits.inbox_bytes
        ):
            raise RelayInboxFull()
        number = inbox.next_number
        inbox.next_number += 1
        inbox.items[number] = (action.item, action.expires)
        inbox.size += len(action.item)
        inbox.soonest = min(inbox.soonest, action.expires)
        return Stored(number)

    def _inbox_fetch(self, action: InboxFetch, now: int) -> Result:
        inbox = self._live_inbox(action.box, now)
        if inbox is None:  # (never made, or idle too long: its writers are gone too)
            raise RelayNothingThere()
        inbox.touched = now
        self._expire_items(inbox, now)
        return self._page(inbox.items, action.after)

    def _inbox_ack(self, action: InboxAck, now: int) -> Result:
        inbox = self._live_inbox(action.box, now)
        if inbox is None:
            raise RelayNothingThere()
        inbox.touched = now
        self._expire_items(inbox, now)  # (an expired item was not there to delete)
        count = 0
        for number in action.numbers:
            entry = inbox.items.pop(number, None)
            if entry is not None:
                inbox.size -= len(entry[0])
                count += 1
        return Done(count)

    # --- mirror segments and blobs

    def _segment_for_write(self, segment: bytes, size: int, create: bool, now: int) -> _Segment:
        """The segment to put `size` bytes into, made if new and allowed (refusals
        change nothing)."""
        found = self.segments.get(segment)
        if found is None:
            if not create:
                raise RelayNotAllowed()
            found = _Segment(now)
        self._expire_items(found, now)
        self._expire_blobs(found, now)
        limits = self.limits
        if (
            len(found.items) + len(found.blobs) >= limits.segment_items
            or found.size + size > limits.segment_bytes
        ):
            raise RelaySegmentFull()
        self.segments[segment] = found
        found.touched = now
        return found

    def _mirror_put(self, action: MirrorPut, now: int) -> Result:
        segment = self._segment_for_write(action.segment, len(action.item), action.create, now)
        number = segment.next_number
        segment.next_number += 1
        segment.items[number] = (action.item, action.expires)
        segment.size += len(action.item)
        segment.soonest = min(segment.soonest, action.expires)
        return Stored(number)

    def _mirror_get(self, action: MirrorGet, now: int) -> Result:
        segment = self.segments.get(action.segment)
        if segment is None:
            raise RelayNothingThere()
        self._expire_items(segment, now)
        return self._page(segment.items, action.after)

    def _blob_put(self, action: BlobPut, now: int) -> Result:
        segment = self._segment_for_write(action.segment, len(action.blob), action.create, now)
        segment.blobs[action.blob_id] = (action.blob, action.expires)
        segment.size += len(action.blob)
        self.blob_segments[action.blob_id] = action.segment
        return BlobStored(action.blob_id)

    def _blob_get(self, action: BlobGet, now: int) -> Result:
        segment = self.segments.get(self.blob_segments.get(action.blob_id, b""))
        found = None if segment is None else segment.blobs.get(action.blob_id)
        if found is None or found[1] <= now:
            raise RelayNothingThere()
        return Blob(found[0])

    def _expire_blobs(self, segment: _Segment, now: int) -> int:
        gone = [b for b, (_, expires) in segment.blobs.items() if expires <= now]
        for blob_id in gone:
            data, _ = segment.blobs.pop(blob_id)
            segment.size -= len(data)
            del self.blob_segments[blob_id]
        return len(gone)

    # --- shared

    def _page(self, items: OrderedDict[int, tuple[bytes, int]], after: int) -> Items:
        budget = self.limits.fetch_bytes
        page: list[tuple[int, bytes, int]] = []
        more = False
        for number, (data, expires) in items.items():
            if number <= after:
                continue
            if page and (budget < len(data) or len(page) >= self.limits.fetch_items):
                more = True
                break
            page.append((number, data, expires))
            budget -= len(data)
        return Items(tuple(page), more)

    @staticmethod
    def _expire_items(holder: _Inbox | _Segment, now: int) -> None:
        if holder.soonest > now:
            return  # (nothing has expired yet: no scan)
        gone = [n for n, (_, expires) in holder.items.items() if expires <= now]
        for number in gone:
            data, _ = holder.items.pop(number)
            holder.size -= len(data)
        holder.soonest = min((e for _, e in holder.items.values()), default=NEVER)

    def _expire(self, action: Expire, now: int) -> Result:
        count = 0
        for box in list(self.inboxes):
            inbox = self.inboxes[box]
            if inbox.touched + self.limits.inbox_idle <= now:
                count += len(inbox.items)
                self._drop_inbox(box)
            else:
                before = len(inbox.items)
                self._expire_items(inbox, now)
                count += before - len(inbox.items)
        for key in list(self.segments):
            segment = self.segments[key]
            before = len(segment.items)
            self._expire_items(segment, now)
            count += before - len(segment.items) + self._expire_blobs(segment, now)
            empty = not segment.items and not segment.blobs
            if empty and segment.touched + self.limits.ttl_max <= now:
                del self.segments[key]
        return Done(count)
