"""The driver and the node together over real TCP on 127.0.0.1: pair, sync, heal.

Adverts go through an in-process bus (`tests.net.loopback`); connections,
the store and the node are the real ones `covey up` runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from covey.core.node import io
from covey.core.seal import open_bytes, seal_bytes
from tests.conftest import SeededRng
from tests.net.loopback import Device, quiet, running, wait_until

pytestmark = pytest.mark.anyio


async def pair(inviter: Device, joiner: Device, group: str, role: str = "member") -> dict:
    """Invite on one device, join with the code on the other; the joiner's final reply."""
    assert inviter.driver is not None
    async with inviter.driver.request(io.Invite(group, role)) as replies:  # type: ignore[arg-type]
        first = await replies.receive()
        assert first.error is None, first.data
        joined = await joiner.command(io.Join(code=first.data["code"], timeout=10))
        with anyio.fail_after(10):
            served = await replies.receive()
    assert served.error is None, served.data
    assert joined[-1].error is None, joined[-1].data
    assert served.data["pairing_words"] == joined[-1].data["pairing_words"]
    return joined[-1].data


async def test_pair_then_a_rotation_reaches_the_other_device(tmp_path: Path) -> None:
    async with running(tmp_path, ["laptop", "phone"]) as (laptop, phone):
        created = await laptop.command(io.CreateGroup("family"))
        assert created[-1].error is None
        joined = await pair(laptop, phone, "family")
        assert joined["group"] == "family"
        assert joined["inviter"] == "laptop"
        group_id = bytes.fromhex(joined["group_id"])
        await laptop.command(io.Rotate("family"))
        laptop_group = laptop.driver.node.groups[group_id]
        phone_group = phone.driver.node.groups[group_id]
        await wait_until(
            lambda: phone_group.state.current_epoch == laptop_group.state.current_epoch,
            laptop,
            phone,
        )
        # What the laptop seals now, the phone opens.
        with quiet(laptop, phone):
            sealed = seal_bytes(laptop_group, b"wifi: correct-horse", b"", SeededRng("s"))
            plain, _ = open_bytes(lambda _: phone_group, sealed)
        assert plain == b"wifi: correct-horse"
    # Everything the phone learned was persisted: a restart from its store agrees.
    async with running(tmp_path, ["phone"]) as (again,):
        with quiet(again):
            reloaded = again.node.groups[group_id]
            assert reloaded.log.heads == phone_group.log.heads
            assert reloaded.state.current_epoch.id in reloaded.keys


async def test_the_node_works_off_the_event_loop(tmp_path: Path) -> None:
    """Review finding (5c): one peer's long sync (a big ops message, the merge
    it settles) blocked the node's event loop, so every other connection and
    the control socket waited. The node now handles each event in a worker
    thread, one at a time."""
    async with running(tmp_path, ["laptop"]) as (laptop,):
        threads = []
        node = laptop.node
        real = node.handle

        def spy(*args):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread())
            return real(*args)

        node.handle = spy  # type: ignore[method-assign]
        created = await laptop.command(io.CreateGroup("family"))
        assert created[-1].error is None
        assert threads
        assert threading.current_thread() not in threads


async def test_junk_on_the_port_closes_those_connections_only(tmp_path: Path) -> None:
    async with running(tmp_path, ["laptop", "phone"]) as (laptop, phone):
        await laptop.command(io.CreateGroup("family"))
        await pair(laptop, phone, "family")
        port = laptop.driver.port
        for junk in (b"\x00" * 10, b"cv1c" + b"\xff" * 4000, b"cv1p" + b"\x01" * 8 + b"x" * 50):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(junk)
            closed = False
            with anyio.move_on_after(10):  # (a partial frame waits for the 5 s handshake limit)
                try:
                    while True:
                        await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    closed = True  # the node closed it
            assert closed
            await stream.aclose()
        # The node still serves its member: a rotation reaches the phone.
        reply = await laptop.command(io.Rotate("family"))
        group_id = bytes.fromhex(reply[-1].data["group_id"])
        await wait_until(
            lambda: (
                phone.node.groups[group_id].state.current_epoch
                == laptop.node.groups[group_id].state.current_epoch
            ),
            laptop,
            phone,
        )
        failed = laptop.seen("connection_failed")
        assert len(failed) >= 3
        assert not laptop.seen("internal_error")
