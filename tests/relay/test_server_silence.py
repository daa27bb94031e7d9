"""The relay process ends a connection that stays silent, and only that one.

`RelayServer._talk` keeps one deadline per connection and moves it on as
the device speaks (late by at most `DEADLINE_SLACK`): a connection that
never finishes its handshake is closed after the handshake timeout, one
that goes quiet after it after the idle timeout, and one that keeps
talking past both is served all along.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from covey.core.relaylink import RelayLink
from covey.net.relay import RelayConnection
from covey.relay import server, session, store
from covey.relay.limits import DEFAULT_LIMITS
from tests.conftest import SeededRng

pytestmark = pytest.mark.anyio

IDENTITY = session.RelayIdentity.from_seed(b"\x01" * 32)
ACCESS = b"A" * 32


class AsyncMemory:
    limits = DEFAULT_LIMITS

    def __init__(self) -> None:
        self._store = store.MemoryStore(self.limits)

    async def execute(self, action: store.Action | store.Expire, now: int) -> store.Result:
        return self._store.execute(action, now)

    async def listen(
        self,
        put: Callable[[bytes | None], object],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()  # (one process: nothing to hear from others)
        await anyio.sleep_forever()


@asynccontextmanager
async def served(
    backend: Any = None, **options: Any
) -> AsyncIterator[tuple[server.RelayServer, RelayLink]]:
    """A relay server in this process on 127.0.0.1 (the reference store unless
    `backend`), and its link; `options` go to `RelayServer`."""
    relay = server.RelayServer(IDENTITY, ACCESS, backend or AsyncMemory(), **options)
    async with anyio.create_task_group() as tasks:

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await relay.serve("127.0.0.1", 0, started=task_status.started)

        port = await tasks.start(serve)
        yield relay, RelayLink("127.0.0.1", port, IDENTITY.public, ACCESS)
        tasks.cancel_scope.cancel()


@asynccontextmanager
async def serving(idle_timeout: float = server.IDLE_TIMEOUT) -> AsyncIterator[RelayLink]:
    async with served(idle_timeout=idle_timeout) as (_, link):
        yield link


async def closed_after(stream: anyio.abc.SocketStream) -> float:
    """Seconds until the relay closes `stream` (reading what it sends meanwhile)."""
    start = time.monotonic()
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return time.monotonic() - start


async def test_a_connection_that_never_finishes_its_handshake_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "HANDSHAKE_TIMEOUT", 0.5)
    monkeypatch.setattr(server, "DEADLINE_SLACK", 0.2)
    async with serving() as link:
        stream = await anyio.connect_tcp(link.host, link.port)
        await stream.send(session.PREAMBLE)  # (and nothing more)
        with anyio.fail_after(5):
            waited = await closed_after(stream)
        await stream.aclose()
        assert waited >= 0.4  # (never before its time; fail_after: it did end)


async def test_a_connection_is_closed_when_silent_and_served_while_it_speaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "HANDSHAKE_TIMEOUT", 0.5)
    monkeypatch.setattr(server, "DEADLINE_SLACK", 0.2)
    async with serving(idle_timeout=0.8) as link:
        conn = await RelayConnection.open(link, SeededRng("talker"))
        # Speaks every 0.3 s for 2.5 s: past both timeouts, never silent for long.
        for _ in range(8):
            await anyio.sleep(0.3)
            with anyio.fail_after(5):
                assert await conn.call("access", secret=ACCESS) is True
        with anyio.fail_after(5):
            waited = await closed_after(conn.stream)
        await conn.aclose()
        assert waited >= 0.7  # (never before its time; fail_after: it did end)
