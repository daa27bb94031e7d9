"""The driver: carries out a pure `Node`'s effects with anyio, and feeds it real events.

DESIGN. Everything the protocol decides is in `covey.core.node`; this module
only connects it to the world. One task (`_run_node`) owns the node: it
takes one event at a time from a bounded inbox, calls `node.handle`, and
carries out the effects in order:

* `Persist`: one store transaction (`Store.commit`), awaited before the
  next effect, so nothing after it (a send) happens before it is durable;
* `Send` / `Close`: queued on that connection's writer, which sends in
  order and closes after the last queued bytes; a peer that does not read
  (more than `MAX_BACKLOG` bytes waiting) loses its connection;
* `Dial`: a task connects to the first address that answers (each within
  `CONNECT_TIMEOUT`), then reports `Connected` (or `Closed`);
* `Advertise` / `Withdraw`: the `Lan` (mDNS, or a test's bus);
* `WakeAt`: the inbox wait times out then, and the node gets a `Tick`;
* `Notify`: the `emit` callback (log lines, JSON events);
* `Reply`: to whoever made the request (`request()`).

Every connection has a reader task that posts `Received` and, when the
stream ends, `Closed`. Readers, the accept loop and the LAN all wait when the
inbox is full: a flood slows the flooders, it does not grow memory.

The driver keeps no protocol state of its own: no groups (the node holds
them), no schedule, no limits but those of its buffers.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from covey.core import Rng
from covey.core.node import Node, io
from covey.core.node.io import ConnId
from covey.errors import CoveyError
from covey.net.accept import accepted
from covey.store.sqlite import Store

log = logging.getLogger("covey.driver")

#: Events waiting for the node; senders wait when it is full.
MAX_INBOX: Final = 256
#: Bytes queued for one connection before it is dropped as not reading.
MAX_BACKLOG: Final = 16 * 1024 * 1024
#: Seconds to reach one address of a dial.
CONNECT_TIMEOUT: Final = 3.0
#: Seconds to send what is queued on a connection the node closed.
FLUSH_TIMEOUT: Final = 5.0
#: Bytes read from a socket at once.
READ_SIZE: Final = 64 * 1024
#: Replies waiting for a requester that has not read them.
MAX_REPLIES: Final = 64


Post = Callable[[io.Event], Coroutine[Any, Any, None]]


@contextmanager
def plain_errors() -> Iterator[None]:
    """Raise the first `CoveyError` out of anyio's exception groups as itself.

    A store that refuses a `Persist` (a group name taken, a full disk) stops
    the driver; the command that caused it reports that error in one line.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        first = next((e for e in leaves if isinstance(e, CoveyError)), None)
        if first is None:
            raise
        raise first from None


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def unreachable(address: str, port: int, exc: Exception) -> str:
    """Why a dial to `address` failed, in words (never an exception's class name)."""
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    cause: BaseException | None = exc
    while cause is not None:  # (anyio raises its own OSError from the real one)
        if isinstance(cause, TimeoutError):
            return f"no answer from {where}"
        if isinstance(cause, ConnectionRefusedError):
            return f"could not connect to {where}: connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return f"could not connect to {where}: {cause.strerror.lower()}"
        cause = cause.__cause__
    return f"could not connect to {where}"


class Lan(Protocol):
    """Where adverts go and come from (mDNS in `covey up`, a bus in tests).

    `start` gets the driver's `post` (for `AdvertSeen` / `AdvertLost`) and a
    task group for any task of its own.
    """

    async def start(self, post: Post, tg: anyio.abc.TaskGroup) -> None: ...

    async def advertise(self, name: str, port: int, txt: bytes) -> None: ...

    async def withdraw(self, name: str) -> None: ...

    async def close(self) -> None: ...


class NoLan:
    """No adverts at all: a node reached only by address (or not at all)."""

    async def start(self, post: Post, tg: anyio.abc.TaskGroup) -> None:
        return None

    async def advertise(self, name: str, port: int, txt: bytes) -> None:
        return None

    async def withdraw(self, name: str) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass(eq=False)
class Connection:
    """One TCP connection's queue and tasks; `stream` is None while a dial connects."""

    conn: ConnId
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stream: anyio.abc.SocketStream | None = None
    queue: deque[bytes | None] = field(default_factory=deque)
    queued: int = 0
    ready: anyio.Event = field(default_factory=anyio.Event)
    closing: bool = False
    error: str | None = None


@dataclass
class Driver:
    """Runs one node; see the module docstring."""

    node: Node
    store: Store | None
    data_key: bytes
    rng: Rng
    clock: Callable[[], float]
    lan: Lan = field(default_factory=NoLan)
    emit: Callable[[str, dict[str, Any]], None] = lambda event, data: None
    #: Where to listen: None for no listener (a joiner), 0 for any port.
    port: int | None = 0
    host: str | None = None
    connections: dict[ConnId, Connection] = field(default_factory=dict)
    _wake: float | None = None
    _next_conn: int = 1
    _next_request: int = 1
    _replies: dict[int, MemoryObjectSendStream[io.Reply]] = field(default_factory=dict)
    _tg: anyio.abc.TaskGroup | None = None
    _inbox_in: MemoryObjectSendStream[io.Event] | None = None
    _started: anyio.Event = field(default_factory=anyio.Event)
    #: Requests whose requester left (at most one per request).
    _cancels: list[int] = field(default_factory=list)
    #: Held while the node handles an event (in a worker thread): whoever
    #: reads the node from outside (a test) holds it too.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def run(self, ready: Callable[[int], None] | None = None) -> None:
        """Serve until cancelled; `ready(port)` once listening (port 0: no listener)."""
        inbox_in, inbox_out = anyio.create_memory_object_stream[io.Event](MAX_INBOX)
        self._inbox_in = inbox_in
        listener: anyio.abc.Listener[Any] | None = None
        if self.port is not None:
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
            self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if listener is not None:
                    # One accept loop per socket (IPv4 and IPv6 when both exist).
                    for socket_listener in getattr(listener, "listeners", [listener]):
                        tg.start_soon(self._accept_loop, socket_listener)
                await self.lan.start(self.post, tg)
                self._started.set()
                tg.start_soon(self._run_node, inbox_out)
                self.emit("listening", {"port": self.port or 0})
                if ready is not None:
                    ready(self.port or 0)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_TIMEOUT):
                await self.lan.close()
                if listener is not None:
                    await listener.aclose()
                for connection in list(self.connections.values()):
                    if connection.stream is not None:
                        await connection.stream.aclose()
                self.connections.clear()
            inbox_in.close()
            inbox_out.close()

    # --- events in -----------------------------------------------------------------

    async def post(self, event: io.Event) -> None:
        """Give the node an event (waits while the inbox is full)."""
        await self._started.wait()
        assert self._inbox_in is not None
        await self._inbox_in.send(event)

    @asynccontextmanager
    async def request(
        self, action: io.Action
    ) -> AsyncIterator[MemoryObjectReceiveStream[io.Reply]]:
        """Run a command on the node: yields the stream of its replies.

        Leaving early cancels the request (the node stops an invitation or a
        join it started; for a finished request, `Cancel` does nothing).
        """
        request = self._next_request
        self._next_request += 1
        replies_in, replies_out = anyio.create_memory_object_stream[io.Reply](MAX_REPLIES)
        self._replies[request] = replies_in
        try:
            await self.post(io.Command(request, action))
            yield replies_out
        finally:
            self._replies.pop(request, None)
            replies_in.close()
            replies_out.close()
            # Never lost, never waited on: the node loop takes pending
            # cancellations before its next event.
            self._cancels.append(request)
            if self._inbox_in is not None:
                with suppress(
                    anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
                ):
                    self._inbox_in.send_nowait(io.Tick())

    async def _accept_loop(self, listener: Any) -> None:
        """Accept connections and hand them to the node, which decides who stays.

        Running out of file descriptors (a flood of connections) pauses
        accepting for a moment instead of stopping the node.
        """

        def failed(exc: OSError) -> None:
            self.emit("accept_failed", {"reason": type(exc).__name__})

        async for stream in accepted(listener, failed):
            try:
                address = str(stream.extra(anyio.abc.SocketAttribute.remote_address)[0])
            except (IndexError, TypeError, OSError):
                address = "?"
            conn = self._next_conn
            self._next_conn += 1
            connection = Connection(conn, stream=stream)
            self.connections[conn] = connection
            await self.post(io.Incoming(conn, address))
            assert self._tg is not None
            self._tg.start_soon(self._serve, connection)

    # --- the node's loop ---------------------------------------------------------------

    async def _handle(self, event: io.Event) -> list[io.Effect]:
        """Run the node on one event in a worker thread, off the event loop.

        One event can be long work (a sync message of 512 ops, the merge it
        settles, a welcome with a whole log): on the loop it would stall every
        connection and the control socket meanwhile. The node is still driven
        by this one task, one event at a time, so it needs no lock.
        """
        now = self.clock()

        def work() -> list[io.Effect]:
            with self.lock:
                return self.node.handle(event, now, self.rng)

        return await anyio.to_thread.run_sync(work)

    async def _run_node(self, inbox: MemoryObjectReceiveStream[io.Event]) -> None:
        await self._carry_out(await self._handle(io.Tick()))
        while True:
            while self._cancels:
                request = self._cancels.pop(0)
                await self._carry_out(await self._handle(io.Cancel(request)))
            event: io.Event = io.Tick()
            timeout = math.inf if self._wake is None else max(0.0, self._wake - self.clock())
            with anyio.move_on_after(timeout):
                event = await inbox.receive()
            await self._carry_out(await self._handle(event))

    async def _carry_out(self, effects: list[io.Effect]) -> None:
        for effect in effects:
            match effect:
                case io.Persist():
                    if self.store is not None:
                        # A commit that started finishes (or rolls back): the
                        # node's memory already holds the change.
                        with anyio.CancelScope(shield=True):
                            await self.store.commit(
                                effect, self.node.groups, self.data_key, self.rng
                            )
                case io.Send(conn, data):
                    self._send(conn, data)
                case io.Close(conn):
                    self._close(conn)
                case io.Dial():
                    assert self._tg is not None
                    connection = Connection(effect.conn)
                    self.connections[effect.conn] = connection
                    self._tg.start_soon(self._dial, connection, effect.addresses, effect.port)
                case io.Advertise(name, txt):
                    try:
                        await self.lan.advertise(name, self.port or 0, txt)
                    except Exception as exc:  # (no network now: the next advert may work)
                        self.emit("advert_failed", {"reason": type(exc).__name__})
                case io.Withdraw(name):
                    try:
                        await self.lan.withdraw(name)
                    except Exception as exc:
                        self.emit("advert_failed", {"reason": type(exc).__name__})
                case io.WakeAt(time):
                    self._wake = time
                case io.Notify(event, data):
                    self.emit(event, data)
                case io.Reply():
                    replies = self._replies.get(effect.request)
                    if replies is not None:
                        # (A requester that is gone or not reading misses it.)
                        with suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                            replies.send_nowait(effect)

    # --- connections ---------------------------------------------------------------------

    def _send(self, conn: ConnId, data: bytes) -> None:
        connection = self.connections.get(conn)
        if connection is None or connection.closing:
            return
        if connection.queued + len(data) > MAX_BACKLOG:
            self._abort(connection, "the peer is not reading")
            return
        connection.queue.append(data)
        connection.queued += len(data)
        connection.ready.set()

    def _close(self, conn: ConnId) -> None:
        connection = self.connections.get(conn)
        if connection is None or connection.closing:
            return
        connection.closing = True
        connection.queue.append(None)  # the writer closes after what is queued
        connection.ready.set()
        if connection.stream is None:
            connection.scope.cancel()  # still dialing
        else:  # a peer that does not read cannot hold it open
            connection.scope.deadline = min(
                connection.scope.deadline, anyio.current_time() + FLUSH_TIMEOUT
            )

    def _abort(self, connection: Connection, reason: str) -> None:
        """Drop a connection now; the node hears `Closed`."""
        connection.closing = True
        connection.scope.cancel()
        self.connections.pop(connection.conn, None)
        assert self._tg is not None
        self._tg.start_soon(self.post, io.Closed(connection.conn, reason))

    async def _dial(self, connection: Connection, addresses: tuple[str, ...], port: int) -> None:
        """Connect to the first address that answers, then serve the connection.

        One cancel scope covers both, so a `Close` while connecting stops
        the connecting too.
        """
        reason = "no address answered"
        with connection.scope:
            for address in addresses:
                try:
                    with anyio.fail_after(CONNECT_TIMEOUT):
                        stream = await anyio.connect_tcp(address, port)
                except Exception as exc:  # (a bad address fails this dial only)
                    reason = unreachable(address, port, exc)
                    continue
                connection.stream = stream
                await self.post(io.Connected(connection.conn, address))
                await self._pump(connection)
                break
        if connection.stream is None:
            self.connections.pop(connection.conn, None)
            if not connection.closing:
                await self.post(io.Closed(connection.conn, reason))
            return
        await self._ended(connection)

    async def _serve(self, connection: Connection) -> None:
        """Serve an accepted connection until either side ends it."""
        with connection.scope:
            await self._pump(connection)
        await self._ended(connection)

    async def _pump(self, connection: Connection) -> None:
        """Read and write until the peer ends, the writer closes, or it breaks."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write, connection, tg.cancel_scope)
            await self._read(connection)
            tg.cancel_scope.cancel()

    async def _ended(self, connection: Connection) -> None:
        """Close the stream; tell the node, unless it closed the connection itself."""
        assert connection.stream is not None
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await connection.stream.aclose()
        if self.connections.get(connection.conn) is connection:
            del self.connections[connection.conn]
            if not connection.closing:
                await self.post(io.Closed(connection.conn, connection.error or "closed"))

    async def _read(self, connection: Connection) -> None:
        stream = connection.stream
        assert stream is not None
        while True:
            try:
                data = await stream.receive(READ_SIZE)
            except anyio.EndOfStream:
                connection.error = connection.error or "the peer closed the connection"
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                connection.error = connection.error or "the connection broke"
                return
            if not connection.closing:
                await self.post(io.Received(connection.conn, data))

    async def _write(self, connection: Connection, done: anyio.CancelScope) -> None:
        """Send what the node queued, in order; after the last, close our side."""
        stream = connection.stream
        assert stream is not None
        try:
            while True:
                while not connection.queue:
                    connection.ready = anyio.Event()
                    await connection.ready.wait()
                data = connection.queue.popleft()
                if data is None:
                    await stream.send_eof()
                    break
                connection.queued -= len(data)
                await stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            connection.error = connection.error or "the connection broke"
        done.cancel()
