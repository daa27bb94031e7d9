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


def test_erased_keys_go_in_the_same_transaction_as_the_leave_and_the_ops_stay(home: Path) -> None:
    """A leave: the op is stored and the group's keys deleted at once; the log
    stays (readable with no passphrase) until the node deletes the group."""
    from covey.core.identity import create_identity
    from covey.core.node.io import Persist

    anyio.run(make, home, "laptop", None)
    rng = SeededRng("leave")

    async def scenario():
        async with Store.open(home) as store:
            identity, data_key = await store.open_identity(None)
            group = Group.create(identity, "family", "shared", NOW, rng)
            other = create_identity("phone", NOW, SeededRng("phone"))
            group.add(other.record_bytes, "admin", NOW + 1, rng)
            await store.create_group(group, data_key, rng)
            group.remove(identity.device_id.raw, NOW + 2, rng)  # it leaves
            group.shred()
            await store.commit(
                Persist(groups=(group.id,), erased=(group.id,)), {group.id: group}, data_key, rng
            )
            log = await store.load_log(group.id)
            loaded = await store.load_group(group.id, identity, data_key)
            async with (
                store.transaction(write=False) as db,
                db.execute("SELECT count(*) FROM secret WHERE name LIKE 'epoch:%'") as cursor,
            ):
                keys = (await cursor.fetchone())[0]
            return group, log, loaded, keys

    group, log, loaded, keys = anyio.run(scenario)
    assert keys == 0
    assert len(log) == len(group.log) == 3
    assert log.state is not None
    assert summary(log.state) == summary(group.state)
    assert group.me.device_id.raw not in log.state.members
    # Loading restores the keys the store holds and learns none from the
    # wraps still in the log (a replay that re-learnt them did, before the
    # store kept its state): an erased key stays erased.
    assert loaded.keys == {}
    assert summary(loaded.state) == summary(group.state)


def test_load_log_of_a_missing_group_is_no_such_group(home: Path) -> None:
    anyio.run(make, home, "laptop", None)

    async def scenario():
        async with Store.open(home) as store:
            with pytest.raises(NoSuchGroup):
                await store.load_log(b"\x00" * 32)

    anyio.run(scenario)
