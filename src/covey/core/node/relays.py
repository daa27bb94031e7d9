"""The node's relay path: one connection to one relay, for one group, with one job.

DESIGN (PROTOCOL.md section 18.6). A group's relays are in its signed
state, and each member announces its inbox at each (`set_inbox`). While
it serves, a node *visits* them:

* `FetchVisit`: for each group and relay, at start, when it learns of the
  relay, and every `NodeConfig.relay_every` seconds after (`FETCH_EVERY`
  unless `covey up --relay-every` says), it proves it owns its
  inbox there, registers the write tokens of the epochs it holds
  (`writer_tokens`), takes the items waiting, hands the ops inside to the
  group (through the same checks as ops from a direct sync: signatures,
  causal validity, the merge), has the change persisted, and only then
  acknowledges the items (a crash before the ack fetches them again, and
  ops are idempotent).
* `DeliverVisit`: after its logs changed, for each member with an inbox
  there that may lack ops, it seals those ops to that member and puts
  them, with the write token of the newest epoch the member is in first,
  then older ones (`sender_tokens`: the member may not know the newest).
  What a member holds is what a direct sync or its own ops confirm, and
  what was put for it in the last REDELIVER_EVERY (`RelaySchedule.held`).
* `MirrorVisit`: it reads the group's mirror segments it can, and writes
  its own ops into the segments they belong to (`mirror_writes`).

No two jobs, and no two members' deliveries, share a connection, so a
relay cannot tie a device's inbox to its group's segments or to the
inboxes it writes to by the connection (section 18.5).
Everything a relay answers is read as hostile: a page that does not parse
ends the visit; an item that does not open is acknowledged and dropped
(it can never open); the ops inside are only ever offered to the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from covey.core import Rng, relayitems, roster, sync, wire
from covey.core.group import Group
from covey.core.identity import Identity
from covey.core.node.io import ConnId, Effect
from covey.core.node.links import Link
from covey.core.ops import AddRelay, Op
from covey.errors import (
    InvalidInput,
    MalformedMessage,
    RelayNotAllowed,
    RelayNothingThere,
    RelayRefused,
    UnknownDevice,
)
from covey.relay import client, session
from covey.relay.client import Answer, Ready, Refused

#: Seconds between fetches of one inbox while serving.
FETCH_EVERY: Final = 60.0
#: Seconds after a change before its delivery visit (a direct sync in the
#: meantime makes it unneeded; changes in a burst go together).
DELIVER_DELAY: Final = 2.0
#: Seconds before a relay that failed is visited again for the same job.
RETRY_AFTER: Final = 60.0
#: Relay connections of this node's at once.
MAX_VISITS: Final = 8
#: Pages one fetch visit reads (each up to the relay's page limit).
MAX_PAGES: Final = 16
#: Items one fetch leaves at the relay because their ops wait for parents,
#: and their bytes: each is left once (the next fetch acknowledges it, and
#: redelivery brings what was missing), so a member cannot fill another's
#: inbox with items that never go (review finding).
MAX_KEPT: Final = 32
MAX_KEPT_BYTES: Final = 1 << 20
#: Seconds after which what was put for a member, and not confirmed (a
#: direct sync, or an op of the member's that follows it), is put again:
#: a relay may have dropped it, or it may expire (review finding).
REDELIVER_EVERY: Final = 6 * 3600.0
#: Epochs whose write tokens an owner registers (the relay takes 4 at most).
WRITER_EPOCHS: Final = 2
#: Epochs whose tokens a sender tries for one member, newest first.
SENDER_EPOCHS: Final = 3
#: How a peer met through a relay is recorded (`PeerMet.address`): "relay HOST:PORT".
VIA_RELAY: Final = "relay "


def via_relay(relay: AddRelay) -> str:
    host = f"[{relay.host}]" if ":" in relay.host else relay.host
    return f"{VIA_RELAY}{host}:{relay.port}"


Job = Literal["fetch", "deliver", "mirror"]


class VisitHost(Protocol):
    """What a visit needs of its node."""

    @property
    def me(self) -> Identity: ...

    @property
    def groups(self) -> Mapping[bytes, Group]: ...

    def persist(self, groups: set[bytes], out: list[Effect]) -> None: ...


def writer_tokens(group: Group, box: bytes) -> list[bytes]:
    """The write tokens an inbox owner registers: its newest epochs' (WRITER_EPOCHS),
    of epochs only current members hold.

    It stops at the first epoch a device that is no member holds: after a
    rotation that removed a device, only the newest (PROTOCOL.md 18.2);
    after a merge in which a removed device got a concurrent epoch, none
    until the healing rotation (review: the rule "stop at a removal" let it
    write through the concurrent epoch).
    """
    state = group.state
    members = state.members.keys()
    tokens: list[bytes] = []
    for epoch in reversed(state.epochs):
        if not epoch.recipients <= members:
            break
        key = group.keys.get(epoch.id)
        if key is not None:
            tokens.append(relayitems.inbox_token(key, box))
        if len(tokens) == WRITER_EPOCHS:
            break
    return tokens


def sender_tokens(group: Group, member: bytes, box: bytes) -> list[bytes]:
    """Tokens a sender tries for `member`'s inbox, newest epoch first (SENDER_EPOCHS)."""
    tokens: list[bytes] = []
    for epoch in reversed(group.state.epochs):
        key = group.keys.get(epoch.id)
        if key is not None and member in epoch.recipients:
            tokens.append(relayitems.inbox_token(key, box))
            if len(tokens) == SENDER_EPOCHS:
                break
    return tokens


@dataclass
class Put:
    """Ops for one member, sealed item by item, and the tokens left to try."""

    member: bytes
    box: bytes
    items: list[bytes]
    tokens: list[bytes]
    #: The group's version vector these ops bring the member to.
    vector: dict[bytes, int]
    done: int = 0


class OnRelay(Link):
    """A connection to a relay: the relay's proof, then requests and their answers.

    `ask` sends a request and names what to do with its answer (the value,
    or the `RelayRefused` it was refused with); an answer to a request not
    made ends the connection. The link is finished once the relay proved
    its key and every request was answered (`settled`), unless a subclass
    says otherwise.
    """

    def __init__(self, conn: ConnId, now: float, relay: AddRelay, rng: Rng) -> None:
        super().__init__(conn, relay.host, now)
        self.relay = relay
        self.client = client.RelayClient(relay.key, rng)
        self._rng = rng
        self._waiting: dict[int, Callable[[Any], None]] = {}
        self.dialed = ((relay.host,), relay.port)
        #: Effects, and the time, of the event being handled (answers are
        #: handled inside `feed`).
        self.out: list[Effect] = []
        self.now = now

    def connected(self, out: list[Effect]) -> None:
        self.send(out, self.client.start())

    def feed(self, data: bytes, now: float, out: list[Effect]) -> None:
        self.out = out
        self.now = now
        for event in self.client.receive(data):
            self.last_read = now
            self.heard = True
            if isinstance(event, Ready):
                self.proven = True
                self.ready(event, out)
            elif isinstance(event, (Answer, Refused)):
                handler = self._waiting.pop(event.number, None)
                if handler is None:
                    raise MalformedMessage("the relay answered a request not made")
                handler(event.value if isinstance(event, Answer) else event.refusal)
        if self.proven and not self._waiting and self.settles():
            self.finished = True

    def settles(self) -> bool:
        """Whether the link ends once every request was answered."""
        return True

    @property
    def settled(self) -> bool:
        return not self._waiting

    def ask(self, op: str, then: Callable[[Any], None], **values: Any) -> None:
        number, data = self.client.request(op, **values)
        self._waiting[number] = then
        self.send(self.out, data)

    def ready(self, ready: Ready, out: list[Effect]) -> None:
        raise NotImplementedError


class Visit(OnRelay):
    """A visit to one relay for one group (`FetchVisit`, `DeliverVisit`)."""

    job: Job

    def __init__(
        self, host: VisitHost, conn: ConnId, now: float, group: bytes, relay: AddRelay, rng: Rng
    ) -> None:
        super().__init__(conn, now, relay, rng)
        self.host = host
        self.group_id = group

    @property
    def slot(self) -> tuple[bytes, bytes, object]:
        """What at most one visit at a time does: (group, relay, its job or member)."""
        return (self.group_id, self.relay.key, self.job)


def _refused(value: Any) -> RelayRefused | None:
    return value if isinstance(value, RelayRefused) else None


@dataclass
class Taken:
    """What one relay item gave the log."""

    #: The op bytes it carried (None: it did not hold ops for this group).
    raws: list[bytes] | None
    #: IDs of its ops the log took (integrated, pending or already held).
    ids: list[bytes] = field(default_factory=list)
    changed: bool = False
    #: Whether the item's own signature was checked (its sender is known).
    sender_checked: bool = False


def take_item(group: Group, unverified: wire.Unverified, body: relayitems.ItemBody) -> Taken:
    """Offer an opened relay item's ops to the group's log, and check who sent it.

    A sender this device does not know yet (a member added while it was
    away) is introduced by the ops it carries: each op is checked on its own
    by the log, then the item's signature (review finding: such items were
    dropped, and the member never got the key). An item whose signature does
    not check for a known sender gives nothing.
    """
    try:
        if body.kind != "ops":
            raise MalformedMessage("this node takes only ops from a relay")
        group_id, raws = sync.read_ops(body.payload)
        if group_id != group.id:
            raise MalformedMessage("the ops are for another group")
        known = group.state.devices.get(unverified.author)
        if known is not None:
            wire.verify_envelope(unverified, relayitems.ACCEPT, known.signing_key)
    except InvalidInput:
        return Taken(None)
    taken = Taken(raws, sender_checked=known is not None)
    for received in group.receive_all(raws, unverified.author):
        if isinstance(received, InvalidInput):
            continue
        taken.ids.append(received.op.id)
        taken.changed |= bool(received.integrated)
    if known is None:
        known = group.state.devices.get(unverified.author)
        try:
            if known is None:
                raise UnknownDevice()
            wire.verify_envelope(unverified, relayitems.ACCEPT, known.signing_key)
            taken.sender_checked = True
        except InvalidInput:
            pass
    return taken


def _group_of(visit: Visit) -> Group | None:
    return visit.host.groups.get(visit.group_id)


class FetchVisit(Visit):
    """Take this device's inbox items for one group at one relay."""

    job: Job = "fetch"

    def __init__(
        self, host: VisitHost, conn: ConnId, now: float, group: bytes, relay: AddRelay, rng: Rng
    ) -> None:
        super().__init__(host, conn, now, group, relay, rng)
        seed, _ = relayitems.inbox_key(host.me.secrets.signing_seed, group, relay.key)
        self._seed = seed
        #: Items the last fetch left at the relay (this one acknowledges them),
        #: and those this one leaves.
        self.kept_before: frozenset[int] = frozenset()
        self.kept: set[int] = set()
        self._kept_bytes = 0
        self.box = b""
        self.pages = 0
        #: Ops taken from items (handed to the log), and items that did not open.
        self.taken = 0
        self.dropped = 0
        #: Members whose items this visit took (for `covey status`: synced through a relay).
        self.heard_from: set[bytes] = set()

    def ready(self, ready: Ready, out: list[Effect]) -> None:
        group = _group_of(self)
        if group is None:
            return  # (left or shredded meanwhile: nothing to ask)
        auth = client.inbox_auth(self._seed, ready.challenge)
        self.box = auth["box"]
        self.ask("access", self._check, secret=self.relay.access)
        self.ask("inbox-auth", self._check, **auth)
        hashes = [session.writer_hash(t) for t in writer_tokens(group, self.box)]
        self.ask("inbox-writers", self._check, box=self.box, hashes=hashes)
        self._fetch(0)

    def _check(self, value: Any) -> None:
        refusal = _refused(value)
        if refusal is not None:
            raise refusal

    def _fetch(self, after: int) -> None:
        self.pages += 1
        self.ask("inbox-fetch", self._page, box=self.box, after=after)

    def _page(self, value: Any) -> None:
        refusal = _refused(value)
        if refusal is not None:
            raise refusal
        items, more = client.read_items(value)
        group = _group_of(self)
        if group is None:
            return
        me = self.host.me
        changed = False
        done: list[int] = []
        waiting: list[tuple[int, list[bytes]]] = []
        sizes = dict(items)
        for number, item in items:
            try:
                unverified, body = relayitems.unseal_from_inbox(me, group.id, item)
            except InvalidInput:
                self.dropped += 1  # (it will never open: acknowledged, so it goes)
                done.append(number)
                continue
            taken = take_item(group, unverified, body)
            changed |= taken.changed
            if taken.raws is None:
                self.dropped += 1
                done.append(number)
                continue
            if taken.sender_checked:
                self.taken += len(taken.raws)
                self.heard_from.add(unverified.author)
            else:
                self.dropped += 1  # (its ops stand or fall on their own)
            waiting.append((number, taken.ids))
        pending = group.log.pending
        for number, ids in waiting:
            # Ops still waiting for their parents are not stored (`Persist`
            # keeps the log, not its buffer): their item stays at the relay
            # for the next fetch, once, within MAX_KEPT and MAX_KEPT_BYTES.
            size = len(sizes[number])
            if (
                any(op_id in pending for op_id in ids)
                and number not in self.kept_before
                and len(self.kept) < MAX_KEPT
                and self._kept_bytes + size <= MAX_KEPT_BYTES
            ):
                self.kept.add(number)
                self._kept_bytes += size
            else:
                done.append(number)
        if changed:
            self.host.persist({group.id}, self.out)  # before the acknowledgement
        if done:
            self.ask("inbox-ack", self._check, box=self.box, numbers=sorted(done))
        if more and items and self.pages < MAX_PAGES:
            self._fetch(items[-1][0])


#: Epochs whose mirror segments a device reads: the newest it holds keys for
#: (one visit follows the chain further when what it reads gives it a key).
MIRROR_EPOCHS: Final = 2
#: Segments one mirror visit reads at most.
MAX_SEGMENTS: Final = 8
#: How far back a device mirrors its own ops: those of the newest this many
#: epochs (after a start it puts them again; a member further behind gets
#: what it lacks through its inbox).
MIRROR_BACKLOG: Final = 8


def segment_of(epoch_key: bytes, relay: bytes) -> tuple[bytes, bytes, bytes]:
    """(write token, read token, segment ID) of an epoch's mirror segment at a relay."""
    write = relayitems.segment_token(epoch_key, relay)
    read = session.read_token(write)
    return write, read, session.segment_id(read)


def mirror_epochs(group: Group) -> list[bytes]:
    """The newest MIRROR_EPOCHS epochs whose keys this device holds, newest first."""
    found: list[bytes] = []
    for epoch in reversed(group.state.epochs):
        if epoch.id in group.keys:
            found.append(epoch.id)
            if len(found) == MIRROR_EPOCHS:
                break
    return found


def mirror_writes(
    group: Group,
    relay: bytes,
    me: Identity,
    done: Mapping[bytes, int],
    skip: AbstractSet[bytes],
    rng: Rng,
) -> list[tuple[bytes, bytes, int]]:
    """This device's own ops not yet in the mirror segments they go into, sealed:
    [(epoch, item, the highest number of this device's ops the item holds)].

    An op goes into the segment of the newest epoch in its causal past, and,
    if it starts an epoch, into that one's too: a member still at the old
    epoch reads the op that gives it the new key (PROTOCOL.md 18.2). Not into
    a segment a device that is no member can read, unless the op is in the
    causal past of that device's removal (it may learn of its removal, as a
    sync tells it, and nothing after: review finding, after a merge a
    concurrent epoch that still included it took later ops). `done`: per
    epoch, this device's ops already there; `skip`: segments refusing puts.
    """
    log = group.log
    state = group.state
    members = state.members
    mine = me.device_id.raw
    recent = {e.id: e for e in state.epochs[-MIRROR_BACKLOG:]}
    removals: dict[bytes, Op | None] = {}

    def readable_by_outsiders(epoch: bytes, op: Op) -> bool:
        for device in recent[epoch].recipients:
            if device in members:
                continue
            if device not in removals:
                removals[device] = roster.removal_op(log, device)
            removal = removals[device]
            if removal is None or not (removal.id == op.id or log.before(op, removal)):
                return True
        return False

    by_epoch: dict[bytes, list[Op]] = {}
    for op in log.order:
        if op.author != mine:
            continue
        targets = [op.id] if op.id in recent else []
        for epoch in reversed(list(recent)):
            if epoch != op.id and log.before(log.ops[epoch], op):
                if not readable_by_outsiders(epoch, op):
                    targets.append(epoch)
                break
        for epoch in targets:
            if epoch in group.keys and epoch not in skip and op.seq > done.get(epoch, 0):
                by_epoch.setdefault(epoch, []).append(op)
    writes = []
    for epoch, ops in by_epoch.items():
        key = group.keys[epoch]
        _, _, segment = segment_of(key, relay)
        mirror = relayitems.mirror_key(key, relay)
        for message in sync.ops_messages(group.id, ops):
            body = relayitems.ItemBody(group.id, b"", "ops", message)
            item = relayitems.seal_for_mirror(me, mirror, segment, body, rng)
            writes.append((epoch, item, max(op.seq for op in ops)))
    return writes


class MirrorVisit(Visit):
    """The group's mirror at one relay: read the newest segments this device can,
    from where it left off, and put its own ops not yet there.

    Its own connection: reading the mirror on the inbox's would tell the relay
    which inbox belongs to which group's segments (section 18.5).
    """

    job: Job = "mirror"

    def __init__(
        self,
        host: VisitHost,
        conn: ConnId,
        now: float,
        group: bytes,
        relay: AddRelay,
        rng: Rng,
        cursors: dict[bytes, int],
        writes: list[tuple[bytes, bytes, int]],
    ) -> None:
        super().__init__(host, conn, now, group, relay, rng)
        #: Epoch -> how far its segment was read (shared with the schedule).
        self.cursors = cursors
        self.writes = writes
        #: Per epoch: this device's ops now in its segment (every put of it went in),
        #: and the segments that refused a put.
        self.written: dict[bytes, int] = {}
        self.refused: set[bytes] = set()
        self._ttl = 0
        self._read: set[bytes] = set()
        self.pages = 0
        self.taken = 0
        self.dropped = 0
        #: Members whose items this visit took (for `covey status`).
        self.heard_from: set[bytes] = set()

    def ready(self, ready: Ready, out: list[Effect]) -> None:
        self._ttl = ready.limits.ttl_max
        group = _group_of(self)
        if group is None:
            return
        self.ask("access", self._check, secret=self.relay.access)
        self._read_more(group)
        left = {epoch: 0 for epoch, _, _ in self.writes}
        for epoch, _, _ in self.writes:
            left[epoch] += 1

        for epoch, item, upto in self.writes:

            def put(value: Any, epoch: bytes = epoch, upto: int = upto) -> None:
                if isinstance(value, RelayRefused):
                    self.refused.add(epoch)  # (full, or not allowed: leave it a while)
                    return
                left[epoch] -= 1
                if not left[epoch] and epoch not in self.refused:
                    self.written[epoch] = upto

            write, _, _ = segment_of(group.keys[epoch], self.relay.key)
            self.ask("mirror-put", put, token=write, item=item, ttl=self._ttl)

    def _check(self, value: Any) -> None:
        refusal = _refused(value)
        if refusal is not None:
            raise refusal

    def _read_more(self, group: Group) -> None:
        """Read each segment this device can and has not read in this visit."""
        for epoch in mirror_epochs(group):
            if epoch not in self._read and len(self._read) < MAX_SEGMENTS:
                self._read.add(epoch)
                self._get(group, epoch)

    def _get(self, group: Group, epoch: bytes) -> None:
        self.pages += 1
        _, read, _ = segment_of(group.keys[epoch], self.relay.key)
        after = self.cursors.get(epoch, 0)
        self.ask("mirror-get", lambda value: self._page(epoch, value), read=read, after=after)

    def _page(self, epoch: bytes, value: Any) -> None:
        if isinstance(value, RelayNothingThere):
            return  # (nobody wrote to this segment yet)
        self._check(value)
        items, more = client.read_items(value)
        group = _group_of(self)
        if group is None or epoch not in group.keys:
            return
        key = group.keys[epoch]
        _, _, segment = segment_of(key, self.relay.key)
        mirror = relayitems.mirror_key(key, self.relay.key)
        changed = False
        for number, item in items:
            self.cursors[epoch] = max(self.cursors.get(epoch, 0), number)
            try:
                unverified, body = relayitems.unseal_from_mirror(mirror, segment, group.id, item)
            except InvalidInput:
                self.dropped += 1
                continue
            taken = take_item(group, unverified, body)
            changed |= taken.changed
            if taken.raws is None or not taken.sender_checked:
                self.dropped += 1
            else:
                self.taken += len(taken.raws)
                if unverified.author != self.host.me.device_id.raw:
                    self.heard_from.add(unverified.author)
        if changed:
            self.host.persist({group.id}, self.out)
        if more and items and self.pages < MAX_PAGES:
            self._get(group, epoch)
        elif changed:
            self._read_more(group)  # (what it read may have given it the next key)


class DeliverVisit(Visit):
    """Put ops into the inbox of one member that may lack them, at one relay.

    One member per connection: a relay must not learn which inboxes belong
    to one group from a connection that writes to all of them (review).
    """

    job: Job = "deliver"

    def __init__(
        self,
        host: VisitHost,
        conn: ConnId,
        now: float,
        group: bytes,
        relay: AddRelay,
        rng: Rng,
        put: Put,
    ) -> None:
        super().__init__(host, conn, now, group, relay, rng)
        self.put = put
        self.member = put.member
        #: Whether every item went in (the relay said so: it may lie).
        self.delivered = False
        self._ttl = 0

    @property
    def slot(self) -> tuple[bytes, bytes, object]:
        return (self.group_id, self.relay.key, self.member)

    def ready(self, ready: Ready, out: list[Effect]) -> None:
        self._ttl = ready.limits.ttl_max  # (as long as the relay keeps anything)
        self._next(self.put)

    def _next(self, put: Put) -> None:
        if put.done == len(put.items):
            self.delivered = True
            return
        if not put.tokens:
            return  # no token of ours is registered there (yet): another time
        item = put.items[put.done]

        def answered(value: Any) -> None:
            if isinstance(value, RelayNotAllowed):
                put.tokens.pop(0)  # the owner registered another epoch's: try the next
            elif isinstance(value, RelayRefused):
                put.tokens.clear()  # full, unknown, too large: not this time
            else:
                put.done += 1
            self._next(put)

        self.ask("inbox-put", answered, box=put.box, token=put.tokens[0], item=item, ttl=self._ttl)


def puts_for(
    group: Group,
    relay: bytes,
    me: Identity,
    held: Callable[[bytes], Mapping[bytes, int]],
    rng: Rng,
) -> list[Put]:
    """What to put at `relay` for each member with an inbox there that may lack ops.

    `held(member)`: the version vector the member is taken to hold. The
    ops go sealed to each member (`relayitems.seal_for_inbox`), in `ops`
    messages as a direct sync sends them.
    """
    state = group.state
    vector = dict(group.log.version_vector())
    puts = []
    for member, info in sorted(state.members.items()):
        if member == me.device_id.raw:
            continue
        box = state.inbox_of(member, relay)
        if box is None:
            continue
        missing = sync.missing_for(group, held(member))
        if not missing:
            continue
        tokens = sender_tokens(group, member, box)
        if not tokens:
            continue
        items = [
            relayitems.seal_for_inbox(
                me,
                member,
                info.record.box_key,
                relayitems.ItemBody(group.id, member, "ops", message),
                rng,
            )
            for message in sync.ops_messages(group.id, missing)
        ]
        puts.append(Put(member, box, items, tokens, vector))
    return puts


def shown_by_own_ops(group: Group, member: bytes) -> dict[bytes, int]:
    """What a member's own latest op shows it held: the version vector of its
    causal past (a receipt that costs nothing: the member wrote it anyway)."""
    log = group.log
    seq = log.latest.get(member)
    ids = log.by_author_seq.get((member, seq), []) if seq is not None else []
    if len(ids) != 1:
        return {}  # (none, or a fork: take nothing from it)
    return {author: log.clock_value(ids[0], author) for author in log.latest}


def pointwise_max(*vectors: Mapping[bytes, int]) -> dict[bytes, int]:
    merged: dict[bytes, int] = {}
    for vector in vectors:
        for author, seq in vector.items():
            if seq > merged.get(author, 0):
                merged[author] = seq
    return merged


@dataclass
class RelaySchedule:
    """When each group's relays are due for a fetch, and when its changes are to be delivered."""

    #: (group, relay key) -> when to fetch next.
    fetch_at: dict[tuple[bytes, bytes], float] = field(default_factory=dict)
    #: (group, relay key) -> when to deliver (set by a change, cleared by a visit).
    deliver_at: dict[tuple[bytes, bytes], float] = field(default_factory=dict)
    #: (group, relay key) -> when to put again what members have not confirmed.
    redeliver_at: dict[tuple[bytes, bytes], float] = field(default_factory=dict)
    #: (member, group) -> the version vector a direct sync showed it holds.
    confirmed: dict[tuple[bytes, bytes], dict[bytes, int]] = field(default_factory=dict)
    #: (member, group, relay key) -> what was put for it there since, and when
    #: the first of those puts was (unconfirmed: put again after REDELIVER_EVERY).
    delivered: dict[tuple[bytes, bytes, bytes], tuple[dict[bytes, int], float]] = field(
        default_factory=dict
    )
    #: (member, group, relay key) -> puts refused in a row, and until when to
    #: leave the member alone (doubling from RETRY_AFTER to REDELIVER_EVERY:
    #: a member whose tokens this device cannot make refuses every put).
    refused: dict[tuple[bytes, bytes, bytes], tuple[int, float]] = field(default_factory=dict)
    #: (group, relay key) -> the inbox items the last fetch left at the relay.
    kept: dict[tuple[bytes, bytes], frozenset[int]] = field(default_factory=dict)
    #: (group, relay key) -> when to visit the mirror (a change of this device's).
    mirror_at: dict[tuple[bytes, bytes], float] = field(default_factory=dict)
    #: (group, relay key) -> per epoch, this device's ops in its segment there;
    #: the segments refusing puts, until when; and how far each was read.
    mirrored: dict[tuple[bytes, bytes], dict[bytes, int]] = field(default_factory=dict)
    mirror_refused: dict[tuple[bytes, bytes], dict[bytes, float]] = field(default_factory=dict)
    cursors: dict[tuple[bytes, bytes], dict[bytes, int]] = field(default_factory=dict)

    def held(self, group: Group, relay: bytes, now: float) -> Callable[[bytes], dict[bytes, int]]:
        """What to take each member of `group` to hold, for puts at `relay`."""

        def held(member: bytes) -> dict[bytes, int]:
            vectors = [self.confirmed.get((member, group.id), {}), shown_by_own_ops(group, member)]
            put = self.delivered.get((member, group.id, relay))
            if put is not None and now - put[1] < REDELIVER_EVERY:
                vectors.append(put[0])
            return pointwise_max(*vectors)

        return held
