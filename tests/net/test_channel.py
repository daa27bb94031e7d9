"""Channels and sync over real TCP on loopback, several nodes in one process."""

from __future__ import annotations

import anyio
import pytest

from covey.core.channel import frame
from covey.core.sync import SyncSession
from covey.errors import HandshakeFailed, PeerRefused
from covey.net import tcp
from covey.runtime.syncer import sync_once
from tests.conftest import SeededRng
from tests.harness import World, summary

pytestmark = pytest.mark.anyio


async def connect_pair(world: World, a: int, b: int, knows_a=None, knows_b=None):
    """Channels between devices a (initiator) and b over loopback TCP."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    result = {}

    async def accept(stream):
        try:
            result["b"] = await tcp.handshake(
                stream,
                world.identities[b],
                initiator=False,
                rng=SeededRng(f"b{b}"),
                knows=knows_b or (lambda record: True),
            )
        except Exception as exc:
            result["b_error"] = exc
            await stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        try:
            result["a"] = await tcp.handshake(
                stream,
                world.identities[a],
                initiator=True,
                rng=SeededRng(f"a{a}"),
                knows=knows_a or (lambda record: True),
            )
        except Exception as exc:
            result["a_error"] = exc
            await stream.aclose()
        with anyio.fail_after(5):
            while "b" not in result and "b_error" not in result:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await listener.aclose()
    return result


@pytest.fixture
def world() -> World:
    world = World(3, seed="net")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    return world


async def test_handshake_authenticates_device_records(world: World) -> None:
    result = await connect_pair(world, 0, 1)
    assert result["a"].peer == world.identities[1].record
    assert result["b"].peer == world.identities[0].record
    await result["a"].send(b"x" * 200_000)  # several Noise messages
    assert await result["b"].receive() == b"x" * 200_000
    await result["a"].aclose()
    await result["b"].aclose()


async def test_unknown_peer_is_refused(world: World) -> None:
    result = await connect_pair(world, 0, 2, knows_b=lambda record: False)
    assert isinstance(result.get("b_error"), PeerRefused)
    if "a" in result:
        await result["a"].aclose()


async def test_sync_over_tcp_converges(world: World) -> None:
    for _ in range(3):
        world.act(0, "rotate")
    world.act(1, "add", 2)
    result = await connect_pair(world, 0, 1)
    persisted = []

    async def persist(groups):
        persisted.append(groups)

    reports = {}

    async def run(side: str, device: int, peer: int) -> None:
        session = SyncSession({world.replicas[device].id: world.replicas[device]}, world.id(peer))
        reports[side] = await sync_once(result[side], session, persist)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", 0, 1)
            tg.start_soon(run, "b", 1, 0)
    await result["a"].aclose()
    await result["b"].aclose()
    assert summary(world.replicas[0].state) == summary(world.replicas[1].state)
    assert reports["a"].changed
    assert reports["b"].changed
    assert persisted


async def test_garbage_closes_one_connection_only(world: World) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    errors = []

    async def accept(stream):
        try:
            await tcp.handshake(
                stream,
                world.identities[1],
                initiator=False,
                rng=SeededRng("x"),
                knows=lambda record: True,
            )
        except HandshakeFailed as exc:
            errors.append(exc)
        finally:
            await stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        for junk in (frame(b"\x00" * 10), frame(b"\xff" * 40) + frame(b"x"), b"\x00"):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(junk)
            await stream.send_eof()
            await anyio.sleep(0.05)
            await stream.aclose()
        # The listener still serves a real peer afterwards.
        result_stream = await anyio.connect_tcp("127.0.0.1", port)
        with anyio.fail_after(5):
            channel = await tcp.handshake(
                result_stream,
                world.identities[0],
                initiator=True,
                rng=SeededRng("y"),
                knows=lambda record: True,
            )
        assert channel.peer == world.identities[1].record
        await channel.aclose()
        with anyio.fail_after(5):
            while len(errors) < 3:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await listener.aclose()
    assert all(isinstance(e, HandshakeFailed) for e in errors)
