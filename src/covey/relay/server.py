"""The relay process: serves relay sessions over TCP with anyio (an edge: no policy).

Every decision about a connection is the pure `RelaySession`'s; this module
moves bytes between it and a socket, runs the store actions it asks for
(one at a time per connection, so a device that does not read its answers
stalls only its own connection), sweeps expired items every
`EXPIRE_EVERY` seconds, and bounds what the session cannot see:
connections per address, how long a connection may stay silent (unless it
waits for an item), and how many waits the process holds (`wake.Waiters`).
A store that fails (not a refusal) ends the connection it was serving, and
a sweep that fails is tried again at the next: the process goes on
(`report` says what failed, by the names of types only).

Waits (`inbox-wait`): a `Hold` sleeps in a task of its connection until a
put into the inbox is noted or its time is up, while the connection goes on
reading. A put noted is one this process committed, or one another process
committed on the same database, which the store reports (`listen`:
PostgreSQL's LISTEN/NOTIFY). What one connection sends, from its reader or
a woken wait, goes out under one lock and in the order the session wrote
it: its Noise nonces count up, so the device could not read it otherwise.

The relay's identity (its Ed25519 seed) and access secret live in
`<data>/relay.key`, made on first start, owner-only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import anyio.abc

from covey.core import Rng
from covey.core.node.node import plain_address
from covey.entropy import system_rng
from covey.errors import RelayRefused, RelayStoreFailed, StoreCorrupt
from covey.net.accept import accepted
from covey.relay import session, store, wake
from covey.relay.limits import RelayLimits

#: Bytes read from a socket at once.
READ_SIZE: Final = 65_536
#: Seconds to finish the handshake after connecting.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds a connection may go without sending anything.
IDLE_TIMEOUT: Final = 600.0
#: Connections one relay process holds at once, whoever they are from (each
#: takes a file descriptor: the cap stays under the process's limit, less
#: `FD_RESERVE` for its store and listener, `connection_cap`). Past it a new
#: connection is closed at once. It holds every wait `wake.MAX_WAITERS` allows.
MAX_CONNECTIONS: Final = 16_384
FD_RESERVE: Final = 64
#: Seconds a silent connection's deadline may run late (see `_talk`).
DEADLINE_SLACK: Final = 1.0
#: Seconds between sweeps of expired items and idle inboxes.
EXPIRE_EVERY: Final = 60.0
KEY_FILE: Final = "relay.key"


class AsyncStore(Protocol):
    limits: RelayLimits

    async def execute(self, action: store.Action | store.Expire, now: int) -> store.Result: ...

    async def listen(
        self,
        put: Callable[[bytes | None], object],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Until cancelled, call `put(box)` for each inbox put that other relay
        processes commit (`put(None)`: some may have been missed); report
        `task_status.started()` once listening."""
        ...


#: What a connection that went away raises.
GONE: Final = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def load_or_create_identity(
    data: Path, rng: Rng = system_rng
) -> tuple[session.RelayIdentity, bytes]:
    """(the relay's identity, its access secret), made on first start."""
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data / KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(rng(32) + rng(32))
            out.flush()
            os.fsync(out.fileno())
    raw = path.read_bytes()
    if len(raw) != 64:
        raise StoreCorrupt(f"{path} is not a relay key file")
    return session.RelayIdentity.from_seed(raw[:32]), raw[32:]


def connection_cap() -> int:
    """How many connections this process may hold: MAX_CONNECTIONS, or fewer if
    its file descriptors are fewer (the soft limit is raised to the hard one
    first)."""
    try:
        import resource
    except ImportError:  # (not on this platform: trust the constant)
        return MAX_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - FD_RESERVE))


def address_of(peer: object) -> str:
    """The peer's address as limits count it (`plain_address`: an IPv4-mapped
    IPv6 address as the IPv4 address it is)."""
    return plain_address(str(peer[0] if isinstance(peer, tuple) else peer))


@dataclass
class RelayServer:
    identity: session.RelayIdentity
    access: bytes
    backend: AsyncStore
    clock: Callable[[], float] = time.time
    rng: Rng = system_rng
    per_address: dict[str, int] = field(default_factory=dict)
    waiters: wake.Waiters = field(default_factory=wake.Waiters)
    idle_timeout: float = IDLE_TIMEOUT
    #: Connections at once (None: `connection_cap()` when serving starts).
    max_connections: int | None = None
    connections: int = 0
    #: Where the process says what went wrong: an event's name and fields
    #: (names of types and actions, never a secret or a stored byte).
    report: Callable[[str, dict[str, Any]], None] = lambda event, data: None
    #: The serving task group (held waits sleep in it).
    _tasks: anyio.abc.TaskGroup = field(init=False)

    async def serve(
        self, host: str, port: int, *, started: Callable[[int], None] | None = None
    ) -> None:
        """Serve until cancelled; `started(port)` once listening."""
        if self.max_connections is None:
            self.max_connections = connection_cap()
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener, anyio.create_task_group() as tasks:
            bound = listener.extra(anyio.abc.SocketAttribute.local_port)
            self._tasks = tasks
            await tasks.start(self.backend.listen, self.waiters.put)
            if started is not None:
                started(bound)
            tasks.start_soon(self._sweep)
            for socket_listener in getattr(listener, "listeners", [listener]):
                tasks.start_soon(self._accept, socket_listener)

    async def _accept(self, listener: Any) -> None:
        """Take connections while under `max_connections`; close the rest at once.
        An accept that fails (no file descriptor left) pauses, never ends the relay."""

        def failed(exc: OSError) -> None:
            self.report("accept_failed", {"error": type(exc).__name__})

        async for stream in accepted(listener, failed):
            assert self.max_connections is not None
            if self.connections >= self.max_connections:
                await stream.aclose()
                continue
            self.connections += 1  # (`_connection` counts it out)
            self._tasks.start_soon(self._connection, stream)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(EXPIRE_EVERY)
            try:
                await self.backend.execute(store.Expire(), int(self.clock()))
            except Exception as exc:  # (the store failed: the next sweep tries again)
                self.report("sweep_failed", {"error": type(exc).__name__})

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        try:  # (one frame per connection: each costs every idle connection memory)
            address = address_of(stream.extra(anyio.abc.SocketAttribute.remote_address))
            limits = self.backend.limits
            if self.per_address.get(address, 0) >= limits.connections_per_address:
                await stream.aclose()
                return
            self.per_address[address] = self.per_address.get(address, 0) + 1
            try:
                await self._talk(stream)
            except (*GONE, RelayStoreFailed):
                pass
            finally:
                left = self.per_address[address] - 1
                if left:
                    self.per_address[address] = left
                else:
                    del self.per_address[address]
                await stream.aclose()
        finally:
            self.connections -= 1

    async def _talk(self, stream: anyio.abc.SocketStream) -> None:
        relay = session.RelaySession(self.identity, self.backend.limits, self.clock(), self.access)
        link = _Link(stream, relay)
        try:
            await self._read(link)
        finally:
            link.end(self.waiters)

    async def _read(self, link: _Link) -> None:
        relay = link.relay
        timeout = HANDSHAKE_TIMEOUT
        # One deadline for the connection, moved on as it speaks (a cancel
        # scope per receive cost more than the rest of a small request's
        # handling): it is moved only when it would be `DEADLINE_SLACK`
        # seconds late, so a silent connection ends between `timeout` and
        # `timeout + DEADLINE_SLACK` seconds after it last spoke. A connection
        # that holds a wait is silent but not idle: its deadline starts again.
        deadline = anyio.current_time() + timeout
        while not link.ended:
            with anyio.CancelScope(deadline=deadline) as silence:
                while not link.ended:
                    data = await link.stream.receive(READ_SIZE)
                    link.in_turn = True
                    await self._turn(link, partial(relay.receive, data, self.clock(), self.rng))
                    link.in_turn = False
                    timeout = self.idle_timeout if relay.challenge else HANDSHAKE_TIMEOUT
                    due = anyio.current_time() + timeout
                    if due > silence.deadline:
                        silence.deadline = due + DEADLINE_SLACK
            if not silence.cancelled_caught or relay.waiting is None or link.in_turn:
                # Ended; or silent too long; or cut in the middle of a turn
                # (what it sealed may not have gone out: the next message's
                # nonce would not follow, review finding): the connection ends.
                return
            deadline = anyio.current_time() + self.idle_timeout

    async def _turn(self, link: _Link, step: Callable[[], list[session.Output]]) -> None:
        """Ask the session (`step`: what it seals uses up Noise nonces) and carry
        out what it says, both under the link's lock once it has one (a
        connection that never waited has no other task that sends). The
        session is asked inside the lock: a review found a reply sealed
        outside it sent after a later one, which the device cannot read."""
        if link.lock is not None:
            async with link.lock:
                await self._perform(link, step())
            return
        try:
            await self._perform(link, step())
        finally:
            if link.lock is not None:  # (made, and taken, by this turn: `_Link.arm`)
                link.lock.release()

    async def _perform(self, link: _Link, outputs: list[session.Output]) -> None:
        """Carry out what the session said, in order. What an answer says is
        appended, never put before what was said already: the Noise nonces of
        what is sent must count up."""
        relay = link.relay
        while outputs and not link.ended:
            output = outputs.pop(0)
            if isinstance(output, session.End):
                link.end(self.waiters)
                await link.stream.aclose()  # (a reader waiting on it stops)
            elif isinstance(output, session.Send):
                await link.stream.send(output.data)
            elif isinstance(output, session.Hold):
                self._tasks.start_soon(self._hold, link, output.number, output.until)
            else:
                if output.watch is not None:
                    try:
                        link.arm(self.waiters, output.watch)
                    except RelayRefused as refusal:  # (the process holds all it can)
                        outputs += relay.answer(output.number, refusal)
                        continue
                result = await self._run(output.action)
                if isinstance(output.action, store.InboxPut) and isinstance(result, store.Stored):
                    self.waiters.put(output.action.box)  # (committed: wake who waits here)
                outputs += relay.answer(output.number, result)
        if relay.waiting is None:
            link.unwatch(self.waiters)

    async def _hold(self, link: _Link, number: int, until: float) -> None:
        """Sleep until a put into the watched inbox is noted, or `until`; then
        the session's turn. Runs in the server's task group (a task group per
        connection would cost every idle connection some 1.4 KB)."""
        if link.watch is None or link.ended:
            return  # (the connection ended before this task began)
        with anyio.CancelScope() as scope:
            link.holding = scope  # (cancelled when the connection ends)
            event = link.watch.event  # (armed before the fetch that came back empty)
            woken = False
            with anyio.move_on_after(max(0.0, until - self.clock())):
                await event.wait()
                woken = True
            try:
                await self._turn(link, partial(link.relay.wake, number, self.clock(), woken))
            except (*GONE, RelayStoreFailed):
                link.end(self.waiters)
                await link.stream.aclose()  # (its reader stops)
            finally:
                link.holding = None

    async def _run(self, action: store.Action) -> store.Result | RelayRefused:
        """The store's answer to `action`; a store that fails (not a refusal)
        ends this connection only (`RelayStoreFailed`), never the relay."""
        try:
            return await self.backend.execute(action, int(self.clock()))
        except RelayRefused as refusal:
            return refusal
        except Exception as exc:
            self.report(
                "store_failed", {"action": type(action).__name__, "error": type(exc).__name__}
            )
            raise RelayStoreFailed() from exc


class _Link:
    """One connection as the process drives it: its socket, its session, and,
    once it has waited, the lock its outputs go out under and its watch."""

    __slots__ = ("ended", "holding", "in_turn", "lock", "relay", "stream", "watch")

    def __init__(self, stream: anyio.abc.SocketStream, relay: session.RelaySession) -> None:
        self.stream = stream
        self.relay = relay
        #: Made with the first wait: from then on a held wait's task sends too.
        self.lock: anyio.Lock | None = None
        self.watch: wake.Watch | None = None
        #: The held wait's task, while there is one.
        self.holding: anyio.CancelScope | None = None
        #: The reader is in a turn (a deadline that ends it there ends the connection).
        self.in_turn = False
        self.ended = False

    def arm(self, waiters: wake.Waiters, box: bytes) -> None:
        """Note puts into `box` from now on (watching it first if new)."""
        if self.watch is not None and self.watch.box != box:
            self.unwatch(waiters)
        if self.watch is None:
            self.watch = waiters.watch(box)  # (RelaySlowDown when full)
        if self.lock is None:  # (taken by the turn that runs this: `_turn` lets go)
            self.lock = anyio.Lock()
            self.lock.acquire_nowait()
        self.watch.arm()

    def unwatch(self, waiters: wake.Waiters) -> None:
        if self.watch is not None:
            waiters.release(self.watch)
            self.watch = None

    def end(self, waiters: wake.Waiters) -> None:
        """The connection is over: its held wait too."""
        self.ended = True
        self.unwatch(waiters)
        if self.holding is not None:
            self.holding.cancel()
