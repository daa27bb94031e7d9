"""Waiters on inboxes, in one relay process: who to wake when an item is put.

A connection that holds an `inbox-wait` watches its inbox here (`watch`);
when a put into that inbox commits (through this process, or through
another process on the same PostgreSQL database, which tells this one with
NOTIFY), `put(box)` sets the watch's event, and the connection fetches
again. A watch is *armed* before each fetch of its wait (`arm`), so a put
that commits between that fetch and the sleep after it still wakes it.

Mechanics only: whether and how long to wait is the session's policy
(`covey.relay.session`). The bounds here: the number of watches a
process holds (`limit`): each is a sleeping task and a socket, so past it a
wait is refused (`RelaySlowDown`) and the device polls instead; and the
number on one inbox (`MAX_PER_INBOX`), since each put wakes them all.
"""

from __future__ import annotations

from typing import Final

import anyio

from covey.errors import RelaySlowDown

#: Waits one relay process holds at once (about 13 KB each with its
#: connection, benchmarks/relay_connections.py: 10,000 is some 150 MB).
MAX_WAITERS: Final = 10_000
#: Waits on one inbox in one process: its owner's device needs one (two
#: while a connection is replaced). More were a way to make every put into
#: an inbox cost a fetch per wait (a review found 10,000 store transactions
#: for one put): past it, `RelaySlowDown`.
MAX_PER_INBOX: Final = 2


class Watch:
    """One connection's watch on one inbox."""

    __slots__ = ("box", "event")

    def __init__(self, box: bytes) -> None:
        self.box = box
        self.event = anyio.Event()

    def arm(self) -> anyio.Event:
        """Forget puts noted so far (a fetch is about to run); the event the
        next put sets."""
        if self.event.is_set():
            self.event = anyio.Event()
        return self.event


class Waiters:
    """Every watch of one relay process, by inbox."""

    def __init__(self, limit: int = MAX_WAITERS) -> None:
        self.limit = limit
        self._by_box: dict[bytes, set[Watch]] = {}
        self.count = 0

    def watch(self, box: bytes) -> Watch:
        """A new watch on `box` (RelaySlowDown when the process holds `limit`, or
        `box` has MAX_PER_INBOX)."""
        if self.count >= self.limit or len(self._by_box.get(box, ())) >= MAX_PER_INBOX:
            raise RelaySlowDown()
        found = Watch(box)
        self._by_box.setdefault(box, set()).add(found)
        self.count += 1
        return found

    def release(self, watch: Watch) -> None:
        watching = self._by_box.get(watch.box)
        if watching is None or watch not in watching:
            return
        watching.discard(watch)
        self.count -= 1
        if not watching:
            del self._by_box[watch.box]

    def put(self, box: bytes | None) -> int:
        """An item was put into `box` (None: into any inbox, perhaps: wake every
        watch, as after a lost connection to the database). How many woke."""
        if box is None:
            watches = [w for watching in self._by_box.values() for w in watching]
        else:
            watches = list(self._by_box.get(box, ()))
        for found in watches:
            found.event.set()
        return len(watches)
