"""The relay process: serves relay sessions over TCP with anyio (an edge: no policy).

Every decision about a connection is the pure `RelaySession`'s; this module
moves bytes between it and a socket, runs the store actions it asks for
(one at a time per connection, so a device that does not read its answers
stalls only its own connection), sweeps expired items every
`EXPIRE_EVERY` seconds, and bounds what the session cannot see:
connections per address, and how long a connection may stay silent.

The relay's identity (its Ed25519 seed) and access secret live in
`<data>/relay.key`, made on first start, owner-only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import anyio
import anyio.abc

from covey.core import Rng
from covey.core.node.node import plain_address
from covey.entropy import system_rng
from covey.errors import RelayRefused, StoreCorrupt
from covey.relay import session, store
from covey.relay.limits import RelayLimits

#: Bytes read from a socket at once.
READ_SIZE: Final = 65_536
#: Seconds to finish the handshake after connecting.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds a connection may go without sending anything.
IDLE_TIMEOUT: Final = 600.0
#: Seconds a silent connection's deadline may run late (see `_talk`).
DEADLINE_SLACK: Final = 1.0
#: Seconds between sweeps of expired items and idle inboxes.
EXPIRE_EVERY: Final = 60.0
KEY_FILE: Final = "relay.key"


class AsyncStore(Protocol):
    limits: RelayLimits

    async def execute(self, action: store.Action | store.Expire, now: int) -> store.Result: ...


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

    async def serve(
        self, host: str, port: int, *, started: Callable[[int], None] | None = None
    ) -> None:
        """Serve until cancelled; `started(port)` once listening."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener, anyio.create_task_group() as tasks:
            bound = listener.extra(anyio.abc.SocketAttribute.local_port)
            if started is not None:
                started(bound)
            tasks.start_soon(self._sweep)
            await listener.serve(self._connection, task_group=tasks)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(EXPIRE_EVERY)
            await self.backend.execute(store.Expire(), int(self.clock()))

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        address = address_of(stream.extra(anyio.abc.SocketAttribute.remote_address))
        limits = self.backend.limits
        if self.per_address.get(address, 0) >= limits.connections_per_address:
            await stream.aclose()
            return
        self.per_address[address] = self.per_address.get(address, 0) + 1
        try:
            await self._talk(stream)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            left = self.per_address[address] - 1
            if left:
                self.per_address[address] = left
            else:
                del self.per_address[address]
            await stream.aclose()

    async def _talk(self, stream: anyio.abc.SocketStream) -> None:
        relay = session.RelaySession(self.identity, self.backend.limits, self.clock(), self.access)
        timeout = HANDSHAKE_TIMEOUT
        # One deadline for the connection, moved on as it speaks (a cancel
        # scope per receive cost more than the rest of a small request's
        # handling): it is moved only when it would be `DEADLINE_SLACK`
        # seconds late, so a silent connection ends between `timeout` and
        # `timeout + DEADLINE_SLACK` seconds after it last spoke.
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as silence:
            while True:
                data = await stream.receive(READ_SIZE)
                outputs = relay.receive(data, self.clock(), self.rng)
                while outputs:
                    output = outputs.pop(0)
                    if isinstance(output, session.End):
                        return
                    if isinstance(output, session.Send):
                        await stream.send(output.data)
                    else:
                        outputs[:0] = relay.answer(output.number, await self._run(output.action))
                timeout = IDLE_TIMEOUT if relay.challenge else HANDSHAKE_TIMEOUT
                due = anyio.current_time() + timeout
                if due > silence.deadline:
                    silence.deadline = due + DEADLINE_SLACK

    async def _run(self, action: store.Action) -> store.Result | RelayRefused:
        try:
            return await self.backend.execute(action, int(self.clock()))
        except RelayRefused as refusal:
            return refusal
