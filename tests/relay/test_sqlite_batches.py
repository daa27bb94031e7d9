"""The SQLite relay store's group commit, held to the reference store under concurrency.

Actions from many connections share a transaction (a savepoint each, one
commit): rounds of up to 40 concurrent actions land in shared batches, and
each caller's answer must equal the reference store's, replayed in the order
the writer ran them. And the review's findings (2026-12-03): one action's
failure fails only it; a COMMIT that fails does not wedge the store; a
caller still queued when the store closes is told, not left waiting.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from covey.errors import RelayRefused
from covey.relay import store
from covey.relay.limits import ITEM_SIZES
from covey.relay.sqlite import SqliteRelayStore
from tests.relay.test_stores import BOXES, LIMITS, SEGMENTS, WRITERS

pytestmark = pytest.mark.anyio

SMALL, BIG = b"a" * ITEM_SIZES[0], b"b" * ITEM_SIZES[1]


class Recording(SqliteRelayStore):
    """Notes the order the writer runs actions in."""

    order: list[tuple[int, Any, int]]

    def _run(self, action: Any, now: int) -> store.Result:
        self.order.append((id(action), action, now))
        return super()._run(action, now)


def random_action(r: random.Random, now: int, blobs: list[bytes]) -> Any:
    k = r.randrange(10)
    expires = now + r.randint(1, 80)
    if k in (0, 1, 2):
        return store.InboxPut(r.choice(BOXES), r.choice(WRITERS), r.choice([SMALL, BIG]), expires)
    if k == 3:
        writers = tuple(r.sample(WRITERS, r.randint(1, 2)))
        return store.InboxWriters(r.choice(BOXES), writers, r.random() < 0.8)
    if k == 4:
        return store.InboxFetch(r.choice(BOXES), r.randint(0, 4))
    if k == 5:
        numbers = tuple(r.randint(1, 8) for _ in range(r.randint(0, 3)))
        return store.InboxAck(r.choice(BOXES), numbers)
    if k == 6:
        item = r.choice([SMALL, BIG])
        return store.MirrorPut(r.choice(SEGMENTS), item, expires, r.random() < 0.8)
    if k == 7:
        return store.MirrorGet(r.choice(SEGMENTS), r.randint(0, 5))
    if k == 8:
        blobs.append(len(blobs).to_bytes(32, "big"))
        return store.BlobPut(r.choice(SEGMENTS), blobs[-1], r.choice([SMALL, BIG]), expires)
    if r.random() < 0.5:
        return store.Expire()
    return store.BlobGet(r.choice(blobs) if blobs else b"\xff" * 32)


def outcome(run: Any) -> Any:
    try:
        return run()
    except RelayRefused as refusal:
        return type(refusal)


@pytest.mark.parametrize("seed", range(12))
async def test_concurrent_actions_answer_as_the_reference_store(seed: int, tmp_path: Path) -> None:
    r = random.Random(seed)
    reference = store.MemoryStore(LIMITS)
    blobs: list[bytes] = []
    now = 1000
    batched = 0
    async with Recording.open(tmp_path / "relay.db", LIMITS) as relay:
        relay.order = []
        for _ in range(30):
            actions = [random_action(r, now, blobs) for _ in range(r.randint(1, 40))]
            got: dict[int, Any] = {}

            async def call(action: Any, got: dict[int, Any], now: int) -> None:
                try:
                    got[id(action)] = await relay.execute(action, now)
                except RelayRefused as refusal:
                    got[id(action)] = type(refusal)

            async with anyio.create_task_group() as tasks:
                for action in actions:
                    tasks.start_soon(call, action, got, now)
            batched += len(actions) > 1
            for key, action, when in relay.order:
                assert got[key] == outcome(lambda a=action, t=when: reference.execute(a, t))
            relay.order.clear()
            now += r.randint(0, 60)
    assert batched


async def test_one_failing_action_fails_only_itself(tmp_path: Path) -> None:
    async with SqliteRelayStore.open(tmp_path / "relay.db") as relay:
        segment, box, writer = b"\x0a" * 32, b"\x01" * 32, b"\x02" * 32
        await relay.execute(store.MirrorPut(segment, SMALL, 2000, True), 1000)
        await relay.execute(store.InboxWriters(box, (writer,), True), 1000)
        await relay.execute(store.BlobPut(segment, b"\x07" * 32, SMALL, 2000), 1000)
        out: dict[str, Any] = {}

        async def call(name: str, action: Any) -> None:
            try:
                out[name] = await relay.execute(action, 1000)
            except Exception as exc:
                out[name] = type(exc)

        async with anyio.create_task_group() as tasks:  # (one batch: the writer is idle)
            tasks.start_soon(call, "first", store.InboxPut(box, writer, SMALL, 2000))
            tasks.start_soon(
                call, "same blob ID", store.BlobPut(segment, b"\x07" * 32, SMALL, 2000)
            )
            tasks.start_soon(call, "second", store.InboxPut(box, writer, SMALL, 2000))
        assert out == {
            "first": store.Stored(1),
            "same blob ID": sqlite3.IntegrityError,
            "second": store.Stored(2),
        }


class _RefusesOneCommit:
    """A connection whose first COMMIT fails and leaves the transaction open
    (what SQLite does on SQLITE_BUSY at COMMIT)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.failures = 1

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


async def test_a_failed_commit_does_not_wedge_the_store(tmp_path: Path) -> None:
    async with SqliteRelayStore.open(tmp_path / "relay.db") as relay:
        relay._db = _RefusesOneCommit(relay._db)  # type: ignore[assignment]
        action = store.InboxWriters(b"\x01" * 32, (b"\x02" * 32,), True)
        with pytest.raises(sqlite3.OperationalError):
            await relay.execute(action, 1000)
        assert await relay.execute(action, 1000) == store.Done(1)
        assert not relay._db.in_transaction


class _Slow(SqliteRelayStore):
    def _transaction(self, batch: Any) -> None:
        time.sleep(0.2)  # (a slow fsync)
        super()._transaction(batch)


async def test_callers_still_queued_when_the_store_closes_are_told(tmp_path: Path) -> None:
    answers: dict[int, Any] = {}

    async def caller(relay: SqliteRelayStore, i: int) -> None:
        try:
            answers[i] = await relay.execute(store.Expire(), 1000)
        except anyio.ClosedResourceError:
            answers[i] = "closed"

    with anyio.fail_after(5):
        async with (
            anyio.create_task_group() as outer,
            _Slow.open(tmp_path / "relay.db") as relay,
        ):
            outer.start_soon(caller, relay, 0)
            await anyio.sleep(0.05)  # (the writer is in the first batch)
            for i in range(1, 5):
                outer.start_soon(caller, relay, i)
            await anyio.sleep(0.01)
    assert answers[0] == store.Done(0)
    assert sorted(answers) == [0, 1, 2, 3, 4]
    assert {answers[i] for i in range(1, 5)} <= {"closed", store.Done(0)}
