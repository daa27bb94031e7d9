"""A lost phone, removed with `covey remove`, end to end over loopback TCP.

Three devices pair and sync through real drivers on 127.0.0.1 (adverts on
the in-process bus of `tests.net.loopback`; no network namespace, no mDNS).
The phone is then lost (its node is off). The laptop's driver stands in for
`covey up`: this test holds the laptop's home lock and serves its control
socket, so the real `covey remove` process reaches that node, as it would
a running `covey up`. The tablet hears of the removal at once; what the
laptop seals next, the tablet opens and the phone cannot. When the phone
comes back, it learns that it was removed and `covey status` says so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from covey.core.node import io
from covey.runtime import control
from tests.cli.test_identity_cli import assert_one_line_error, covey
from tests.net.loopback import Device, quiet, running, wait_until
from tests.net.test_driver import pair

pytestmark = pytest.mark.anyio


async def cli(*args: str, home: Path) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(covey, *args, home=home))


def same_epoch(devices: list[Device], group_id: bytes) -> bool:
    epochs = {d.node.groups[group_id].state.current_epoch.id for d in devices}
    return len(epochs) == 1


async def test_a_lost_phone_is_removed_and_cannot_open_what_is_sealed_next(
    tmp_path: Path,
) -> None:
    before = tmp_path / "before.txt"
    before.write_text("sealed while the phone was a member\n")
    after = tmp_path / "after.txt"
    after.write_text("sealed after the phone was removed\n")

    async with running(tmp_path, ["laptop", "phone", "tablet"]) as (laptop, phone, tablet):
        await laptop.command(io.CreateGroup("family"))
        joined = await pair(laptop, phone, "family")
        await pair(laptop, tablet, "family")
        group_id = bytes.fromhex(joined["group_id"])
        await wait_until(
            lambda: same_epoch([laptop, phone, tablet], group_id), laptop, phone, tablet
        )
    sealed = await cli("seal", "-g", "family", str(before), "--json", home=laptop.home)
    assert sealed.returncode == 0, sealed.stderr
    opened = await cli(
        "open", f"{before}.covey", "-o", str(tmp_path / "phone-before"), home=phone.home
    )
    assert opened.returncode == 0, opened.stderr  # (so the phone's failure below means something)

    # The phone is lost: only the laptop and the tablet run.
    async with running(tmp_path, ["laptop", "tablet"]) as (laptop, tablet):
        # They found each other (a sync that changed nothing notifies nothing).
        await wait_until(lambda: met(laptop, tablet) or met(tablet, laptop))
        lock = control.HomeLock(laptop.home)
        assert lock.try_acquire()
        try:
            async with anyio.create_task_group() as tg:
                assert laptop.driver is not None
                listener = await control.serve(laptop.home, laptop.driver, tg)
                removed = await cli(
                    "remove", "phone", "-g", "family", "--yes", "--json", home=laptop.home
                )
                assert removed.returncode == 0, removed.stderr
                document = json.loads(removed.stdout)
                assert document["removed"]["name"] == "phone"
                assert [d["name"] for d in document["told"]] == ["tablet"]
                assert document["to_tell"] == []
                await wait_until(lambda: same_epoch([laptop, tablet], group_id), laptop, tablet)
                sealed = await cli("seal", "-g", "family", str(after), home=laptop.home)
                assert sealed.returncode == 0, sealed.stderr
                tg.cancel_scope.cancel()
            await listener.aclose()
        finally:
            lock.release()
    tablet_opens = await cli(
        "open", f"{after}.covey", "-o", str(tmp_path / "tablet-after"), home=tablet.home
    )
    assert tablet_opens.returncode == 0, tablet_opens.stderr
    assert (tmp_path / "tablet-after").read_text() == after.read_text()
    phone_fails = await cli(
        "open", f"{after}.covey", "-o", str(tmp_path / "phone-after"), home=phone.home
    )
    assert_one_line_error(phone_fails)
    assert not (tmp_path / "phone-after").exists()

    # The phone comes back: it is told of its removal, and says so.
    async with running(tmp_path, ["laptop", "tablet", "phone"]) as (laptop, tablet, phone):
        await wait_until(lambda: bool(phone.seen("removed")))
        assert phone.seen("removed")[0]["by"] == "laptop"
        with quiet(phone):
            group = phone.node.groups[group_id]
            assert phone.me.device_id.raw not in group.state.members
            assert group.state.current_epoch.id not in group.keys
    status = await cli("status", "--json", home=phone.home)
    standing = json.loads(status.stdout)["groups"][0]
    assert standing["standing"] == "removed"
    assert standing["removed_by"]["name"] == "laptop"


def met(one: Device, other: Device) -> bool:
    """Whether `one` finished a sync it dialed with `other`."""
    peer = one.node.peers.get(other.me.device_id.raw)
    return peer is not None and peer.synced >= 0
