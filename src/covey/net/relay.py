"""A device's connection to a relay over TCP (anyio): the pure client, driven.

`RelayConnection.open(link, rng)` connects, checks the relay's proof against
the key the link pins (`covey.relay.client`), and presents the link's access
secret; `call(op, **fields)` sends one request and waits for its answer
(a refusal is raised as its `RelayRefused`). The device's node will use
relays through this; the tests and benchmarks do already.
"""

from __future__ import annotations

from typing import Any, Final

import anyio
import anyio.abc

from covey.core import Rng
from covey.core.relaylink import RelayLink
from covey.errors import HandshakeFailed
from covey.relay import client

#: Bytes read from the socket at once.
READ_SIZE: Final = 65_536


class RelayConnection:
    def __init__(self, stream: anyio.abc.SocketStream, relay: client.RelayClient) -> None:
        self.stream = stream
        self.relay = relay

    @classmethod
    async def open(
        cls, link: RelayLink, rng: Rng, *, access: bool = True, local_host: str | None = None
    ) -> RelayConnection:
        stream = await anyio.connect_tcp(link.host, link.port, local_host=local_host)
        conn = cls(stream, client.RelayClient(link.key, rng))
        try:
            await stream.send(conn.relay.start())
            while conn.relay.ready is None:
                conn.relay.receive(await stream.receive(READ_SIZE))
            if access:
                await conn.call("access", secret=link.access)
        except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            await stream.aclose()
            raise HandshakeFailed("the relay closed the connection") from exc
        except BaseException:
            await stream.aclose()
            raise
        return conn

    @property
    def ready(self) -> client.Ready:
        assert self.relay.ready is not None
        return self.relay.ready

    async def call(self, op: str, **fields: Any) -> Any:
        """The answer to one request; a refusal is raised."""
        number = await self.send(op, **fields)
        while True:
            for event in await self.receive():
                if isinstance(event, client.Refused):
                    raise event.refusal
                if isinstance(event, client.Answer) and event.number == number:
                    return event.value

    async def send(self, op: str, **fields: Any) -> int:
        """Send one request without waiting for its answer (its number): a wait
        (`inbox-wait`) may be answered after requests sent later."""
        number, data = self.relay.request(op, **fields)
        await self.stream.send(data)
        return number

    async def receive(self) -> list[client.Event]:
        """What the next bytes from the relay carry (answers and refusals)."""
        return self.relay.receive(await self.stream.receive(READ_SIZE))

    async def aclose(self) -> None:
        await self.stream.aclose()
