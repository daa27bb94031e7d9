"""The node heals a group a merge left unhealthy: the most senior member at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from covey.core import crypto
from covey.runtime.daemon import Daemon
from covey.store.sqlite import Store
from tests.conftest import NOW, SeededRng
from tests.harness import World

pytestmark = pytest.mark.anyio
FAST = {"opslimit": crypto.ARGON2_OPSLIMIT_RANGE[0], "memlimit": crypto.ARGON2_MEMLIMIT_RANGE[0]}


def unhealthy_world() -> World:
    """A merge after which the current key is still held by a removed device."""
    for seed in range(20):
        world = World(3, seed=f"daemon-heal-{seed}")
        world.act(0, "add_admin", 1)
        world.act(0, "add", 2)
        world.sync(0, 1)
        world.act(0, "remove", 2)
        world.act(1, "rotate")  # apart: still wraps for device 2
        world.sync(1, 0)
        world.sync(0, 1)
        if world.replicas[0].state.needs_healing:
            return world
    raise AssertionError("no seed gave an unhealthy merge")


async def heal_as(world: World, device: int, home: Path) -> tuple[bool, bool]:
    """Run the node's healing step once as `device`; (healthy before, after)."""
    me = world.identities[device]
    async with Store.open(home, create=True) as store:
        await store.create_identity(me, None, SeededRng("ring"), **FAST)
        identity, data_key = await store.open_identity(None)
        await store.create_group(world.replicas[device], data_key, SeededRng("save"))
        daemon = Daemon(store, identity, data_key, SeededRng("heal"), lambda: NOW + 10)
        before = not (await daemon.groups())[world.replicas[device].id].state.needs_healing
        await daemon._heal()
        reloaded = await store.load_group(world.replicas[device].id, identity, data_key)
        return before, not reloaded.state.needs_healing


async def test_the_most_senior_member_heals_at_once(tmp_path: Path) -> None:
    world = unhealthy_world()
    assert world.replicas[0].healer_rank() == 0
    before, after = await heal_as(world, 0, tmp_path / "founder")
    assert (before, after) == (False, True)


async def test_a_junior_member_waits_its_turn(tmp_path: Path) -> None:
    world = unhealthy_world()
    assert world.replicas[1].healer_rank() == 1
    before, after = await heal_as(world, 1, tmp_path / "junior")
    assert (before, after) == (False, False)  # it waits rank x HEAL_DELAY first
