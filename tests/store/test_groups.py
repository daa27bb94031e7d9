"""Groups in the store: one transaction per change, keys sealed at rest."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from covey.core.group import Group
from covey.errors import GroupExists, NoSuchGroup
from covey.store.sqlite import Store
from tests.conftest import NOW, SeededRng
from tests.harness import summary
from tests.store.test_sqlite import make


def test_group_round_trip_with_sealed_keys(home: Path) -> None:
    me = anyio.run(make, home, "laptop", None)
    rng = SeededRng("g")

    async def scenario():
        async with Store.open(home) as store:
            identity, data_key = await store.open_identity(None)
            group = Group.create(identity, "family", "shared", NOW, rng)
            await store.create_group(group, data_key, rng)
            group.rotate(NOW + 1, rng)
            await store.save_group(group, data_key, rng)
            loaded = await store.load_group(group.id, identity, data_key)
            return group, loaded

    group, loaded = anyio.run(scenario)
    assert summary(loaded.state) == summary(group.state)
    assert loaded.keys == group.keys
    assert len(loaded.keys) == 2
    raw = (home / "covey.db").read_bytes() + b"".join(
        p.read_bytes() for p in home.iterdir() if p.name != "covey.db"
    )
    for key in group.keys.values():
        assert key not in raw
    assert me.device_id == loaded.me.device_id


def test_names_and_lookups(home: Path) -> None:
    anyio.run(make, home, "laptop", None)
    rng = SeededRng("n")

    async def scenario():
        async with Store.open(home) as store:
            identity, data_key = await store.open_identity(None)
            group = Group.create(identity, "family", "shared", NOW, rng)
            await store.create_group(group, data_key, rng)
            with pytest.raises(GroupExists):
                await store.create_group(
                    Group.create(identity, "family", "forward", NOW, rng), data_key, rng
                )
            assert await store.find_group("family") == (group.id, "family")
            assert await store.find_group(group.id.hex()[:10]) == (group.id, "family")
            with pytest.raises(NoSuchGroup):
                await store.find_group("other")
            await store.shred_group(group.id)
            assert await store.list_groups() == []

    anyio.run(scenario)
