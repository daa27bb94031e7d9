"""The store keeps what a group's ops mean beside them (issue 9, item 2).

Loading verifies nothing twice, `covey group show` reads the view without a
replay, a view that does not match the ops is rebuilt (not trusted), saving
writes only what is new, and ops waiting for a parent survive a restart.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from covey.core import crypto
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.log import GroupLog
from covey.core.node.views import describe
from covey.store import reader
from covey.store.migrations import SCHEMA_VERSION
from covey.store.sqlite import Store
from tests.conftest import NOW, SeededRng
from tests.harness import summary
from tests.store.test_sqlite import make


async def grown(store: Store, rng: SeededRng) -> tuple[Group, bytes]:
    identity, data_key = await store.open_identity(None)
    group = Group.create(identity, "family", "shared", NOW, rng)
    await store.create_group(group, data_key, rng)
    for i in range(3):
        other = create_identity(f"d{i}", NOW, SeededRng(f"d{i}"))
        group.add(other.record_bytes, "member", NOW + i, rng)
        await store.save_group(group, data_key, rng)
    group.rotate(NOW + 9, rng)
    await store.save_group(group, data_key, rng)
    return group, data_key


def test_loading_verifies_no_signature_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    anyio.run(make, home, "laptop", None)
    calls = []

    async def scenario():
        async with Store.open(home) as store:
            group, data_key = await grown(store, SeededRng("v"))
            real = crypto.verify
            monkeypatch.setattr(crypto, "verify", lambda *a: calls.append(a) or real(*a))
            loaded = await store.load_group(group.id, group.me, data_key)
            return group, loaded

    group, loaded = anyio.run(scenario)
    assert calls == []
    assert summary(loaded.state) == summary(group.state)
    assert loaded.keys == group.keys


def test_show_reads_the_view_without_a_replay(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    anyio.run(make, home, "laptop", None)

    async def scenario():
        async with Store.open(home) as store:
            group, _ = await grown(store, SeededRng("s"))
            return group

    def no_replay(*_: object) -> None:
        raise AssertionError("the log was replayed")

    group = anyio.run(scenario)
    monkeypatch.setattr(GroupLog, "receive", no_replay)
    monkeypatch.setattr(GroupLog, "restore", no_replay)
    group_id, document = reader.group_view(home, "family")
    assert group_id == group.id
    assert document == describe(group)


def test_a_view_that_does_not_match_the_ops_is_rebuilt(home: Path) -> None:
    anyio.run(make, home, "laptop", None)

    async def scenario():
        async with Store.open(home) as store:
            group, _ = await grown(store, SeededRng("t"))
            async with store.transaction() as db:  # a view left behind by a crash or a hand
                await db.execute(
                    "UPDATE grp_view SET last_arrival = last_arrival - 1, doc = ?"
                    " WHERE group_id = ?",
                    (b'{"name": "forged"}', group.id),
                )
            return group

    group = anyio.run(scenario)
    assert reader.group_view(home, "family") == (group.id, None)  # not trusted

    async def rebuild():
        async with Store.open(home) as store:
            return await store.rebuild_view(group.id)

    assert anyio.run(rebuild) == describe(group)
    assert reader.group_view(home, group.id.hex()[:10]) == (group.id, describe(group))


def test_saving_reads_no_stored_op_ids_or_key_names(home: Path) -> None:
    anyio.run(make, home, "laptop", None)
    statements: list[str] = []

    async def scenario():
        async with Store.open(home) as store:
            group, data_key = await grown(store, SeededRng("w"))
            await store._db.set_trace_callback(statements.append)
            group.rotate(NOW + 20, SeededRng("w2"))
            await store.save_group(group, data_key, SeededRng("w3"))
            await store._db.set_trace_callback(None)

    anyio.run(scenario)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # (the view notes the last op it describes: one indexed lookup)
    listing = [s for s in reads if ("FROM op" in s and "max(arrival)" not in s) or "substr" in s]
    assert listing == [], reads
    inserts = [s for s in statements if "INSERT" in s and "INTO op " in s]
    assert len(inserts) == 1  # the one new op


def test_ops_waiting_for_a_parent_survive_a_restart(home: Path) -> None:
    anyio.run(make, home, "laptop", None)
    rng = SeededRng("p")

    async def scenario():
        async with Store.open(home) as store:
            identity, data_key = await store.open_identity(None)
            other = create_identity("phone", NOW, SeededRng("phone"))
            theirs = Group.create(other, "family", "shared", NOW, rng)
            theirs.add(identity.record_bytes, "admin", NOW + 1, rng)
            theirs.rotate(NOW + 2, rng)
            theirs.rotate(NOW + 3, rng)
            raws = [op.raw for op in theirs.log.order]
            mine = Group.replica(identity, theirs.id, raws[:2])
            mine.receive(raws[3])  # its parent (raws[2]) is missing
            assert len(mine.log.pending) == 1
            await store.create_group(mine, data_key, rng)
            restarted = await store.load_group(theirs.id, identity, data_key)
            assert len(restarted.log.pending) == 1
            restarted.receive(raws[2])  # the parent comes: both apply
            await store.save_group(restarted, data_key, rng)
            again = await store.load_group(theirs.id, identity, data_key)
            async with (
                store.transaction(write=False) as db,
                db.execute("SELECT count(*) FROM pending_op") as cursor,
            ):
                left = (await cursor.fetchone())[0]
            return theirs, again, left

    theirs, again, left = anyio.run(scenario)
    assert left == 0
    assert not again.log.pending
    assert summary(again.state) == summary(theirs.state)


def test_loading_judges_no_op_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The review measured a node's start (a store load) quadratic in a log with
    concurrent branches: every op that merges them judged against a replay of
    its past. The verdicts are kept with the ops; a load judges none again."""
    anyio.run(make, home, "laptop", None)
    from covey.core import membership

    async def scenario():
        async with Store.open(home) as store:
            identity, data_key = await store.open_identity(None)
            rng = SeededRng("j")
            mine = Group.create(identity, "family", "shared", NOW, rng)
            other = create_identity("tablet", NOW, SeededRng("tablet"))
            mine.add(other.record_bytes, "admin", NOW, rng)
            theirs = Group.replica(other, mine.id, [op.raw for op in mine.log.order])
            for i in range(6):  # apart, then merged, twice over: merge ops
                mine.rotate(NOW + i, rng)
                theirs.set_policy("shared", NOW + i)
                theirs.receive_all([op.raw for op in mine.log.order])
                mine.receive_all([op.raw for op in theirs.log.order])
            await store.create_group(mine, data_key, rng)
            calls = []
            real = membership.check
            monkeypatch.setattr(membership, "check", lambda *a: calls.append(a) or real(*a))
            loaded = await store.load_group(mine.id, identity, data_key)
            return mine, loaded, calls

    mine, loaded, calls = anyio.run(scenario)
    assert calls == []
    assert summary(loaded.state) == summary(mine.state)
    assert loaded.log.validity == mine.log.validity


def test_verdicts_kept_under_older_rules_are_judged_again(home: Path) -> None:
    """The merge rules changed (PROTOCOL.md 6.2, rules 3 and 6), so a verdict a
    store kept under the old ones may be wrong (a review restored a rotation
    as valid that a fresh replica of the same ops refused). Migration 6 marks
    every stored verdict unjudged and drops the views: the next load judges
    every op again, and the next save writes the verdicts back."""
    import sqlite3

    from covey.store.home import db_path

    anyio.run(make, home, "laptop", None)

    async def build():
        async with Store.open(home) as store:
            return await grown(store, SeededRng("m6"))

    group, data_key = anyio.run(build)
    rotation = group.log.order[-1]
    # A store as the old code left it: a wrong verdict, judged, at schema 5.
    with sqlite3.connect(db_path(home)) as db:
        db.execute(
            "UPDATE op SET verdict = 'a stale verdict', judged = 1 WHERE id = ?", (rotation.id,)
        )
        db.execute("ALTER TABLE identity DROP COLUMN person")  # (migration 7's)
        db.execute("DROP TABLE claim_held")  # (migration 8's)
        db.execute("PRAGMA user_version = 5")

    async def reload():
        async with Store.open(home) as store:
            loaded = await store.load_group(group.id, group.me, data_key)
            verdict = loaded.log.validity[rotation.id]
            await store.save_group(loaded, data_key, SeededRng("m6-save"))
            again = await store.load_group(group.id, group.me, data_key)
            return loaded, verdict, again

    loaded, verdict, again = anyio.run(reload)
    assert verdict is None
    assert summary(loaded.state) == summary(group.state)
    assert again.log.rejudged == []  # the verdicts were written back
    with sqlite3.connect(db_path(home)) as db:
        rows = db.execute("SELECT count(*) FROM op WHERE judged = 0").fetchone()[0]
        assert rows == 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_from_before_people_keeps_everything_and_has_no_person(home: Path) -> None:
    """Migration 7 adds the identity's person (`covey init --person`) and drops the
    views (they now show each member's person): nothing else changes."""
    import sqlite3

    from covey.store.home import db_path

    anyio.run(make, home, "laptop", None)

    async def build():
        async with Store.open(home) as store:
            return await grown(store, SeededRng("m7"))

    group, data_key = anyio.run(build)
    with sqlite3.connect(db_path(home)) as db:
        db.execute("ALTER TABLE identity DROP COLUMN person")
        db.execute("DROP TABLE claim_held")  # (migration 8's)
        db.execute("PRAGMA user_version = 6")

    async def reload():
        async with Store.open(home) as store:
            return await store.person(), await store.load_group(group.id, group.me, data_key)

    person, loaded = anyio.run(reload)
    assert person is None
    assert summary(loaded.state) == summary(group.state)
    with sqlite3.connect(db_path(home)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM grp_view").fetchone()[0] == 0


def test_when_a_claim_was_first_held_survives_a_restart_and_goes_when_done(home: Path) -> None:
    """The veto window counts from when this device first held a claim
    (PROTOCOL.md 19.4): the time is kept with the group (a restart counted the
    window again, and a device that sleeps every night never saw days pass);
    a change writes only the change, and a claim no longer pending is dropped.
    A store from before (schema 7) gets the table and loses nothing."""
    import sqlite3

    from covey.store.home import db_path

    anyio.run(make, home, "laptop", None)
    first, second = b"c" * 32, b"d" * 32

    async def build():
        async with Store.open(home) as store:
            group, data_key = await grown(store, SeededRng("held"))
            group.claims_held = {first: NOW + 5, second: NOW + 7}
            await store.save_group(group, data_key, SeededRng("held-1"))
            loaded = await store.load_group(group.id, group.me, data_key)
            loaded.claims_held.pop(first)
            loaded.claims_held[second] = NOW + 8  # (a time is only ever set once; tested anyway)
            await store.save_group(loaded, data_key, SeededRng("held-2"))
            again = await store.load_group(group.id, group.me, data_key)
            return group, data_key, loaded, again

    group, data_key, loaded, again = anyio.run(build)
    assert loaded.saved_claims_held == {second: NOW + 8}
    assert again.claims_held == {second: NOW + 8}
    with sqlite3.connect(db_path(home)) as db:
        db.execute("DROP TABLE claim_held")
        db.execute("PRAGMA user_version = 7")

    async def migrated():
        async with Store.open(home) as store:
            return await store.load_group(group.id, group.me, data_key)

    loaded = anyio.run(migrated)
    assert loaded.claims_held == {}
    assert summary(loaded.state) == summary(group.state)
    with sqlite3.connect(db_path(home)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
