"""The PostgreSQL store's expiry by day: partitions made ahead, whole past days dropped.

Each test has a database of its own (`conftest.fresh_postgres`) and moves
its own clock (`now` is an argument of every action): the days are those
of 1970 and 2026, nothing waits for a real day to pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import asyncpg
import pytest

from covey.errors import RelayInboxFull, StoreTooOld
from covey.relay import store
from covey.relay.limits import DAY, DEFAULT_LIMITS, ITEM_SIZES
from covey.relay.postgres import (
    PARTITIONED,
    PostgresRelayStore,
    day_of_partition,
    partition_name,
)
from tests.relay.conftest import simulated_clock


def opened(dsn: str) -> Any:
    """A store whose sweeps go by the tests' simulated clock."""
    return PostgresRelayStore.open(dsn, LIMITS, database_clock=simulated_clock)


LIMITS = dataclasses.replace(DEFAULT_LIMITS, inbox_items=3, segment_items=3, ttl_max=10 * DAY)
BOX, WRITER, SEG = b"b" * 32, b"w" * 32, b"s" * 32
ITEM = b"i" * ITEM_SIZES[0]
#: Noon, UTC, on the day the tests start (2026-12-03).
START = 20_790 * DAY + DAY // 2


async def partitions(dsn: str) -> dict[str, set[int]]:
    """Each partitioned table's days, as the database lists them."""
    conn = await asyncpg.connect(dsn)
    try:
        found: dict[str, set[int]] = {}
        for table in PARTITIONED:
            rows = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = $1::regclass",
                table,
            )
            found[table] = {day_of_partition(r[0]) for r in rows}  # type: ignore[misc]
        return found
    finally:
        await conn.close()


async def rows(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await conn.close()


def test_partition_names_read_back_as_their_day() -> None:
    day = START // DAY
    assert partition_name("inbox_item", day) == "inbox_item_20261203"
    assert day_of_partition(partition_name("blob", day)) == day
    assert day_of_partition("blob_seg") is None


def test_a_past_day_is_dropped_whole_and_its_quota_is_free_again(fresh_postgres: str) -> None:
    async def run() -> None:
        async with opened(fresh_postgres) as relay:
            now = START
            await relay.execute(store.InboxWriters(BOX, (WRITER,), True), now)
            # Two items that expire tonight, one in five days: the inbox is full.
            for ttl in (60, 3_600, 5 * DAY):
                await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + ttl), now)
            with pytest.raises(RelayInboxFull):
                await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + 60), now)
            await relay.execute(store.MirrorPut(SEG, ITEM, now + 60, True), now)
            await relay.execute(store.BlobPut(SEG, b"x" * 32, ITEM, now + 60), now)
            await relay.execute(store.BlobPut(SEG, b"y" * 32, ITEM, now + 5 * DAY), now)
            today, later = now // DAY, (now + 5 * DAY) // DAY

            now += 2 * DAY  # (the day after tomorrow: today's items all expired)
            await relay.execute(store.Expire(), now)
            days = await partitions(fresh_postgres)
            for table in PARTITIONED:
                assert today not in days[table]  # (dropped whole)
                assert later in days[table]  # (still to come: kept)
                assert set(range(now // DAY, (now + LIMITS.ttl_max) // DAY + 1)) <= days[table]
            assert await rows(fresh_postgres, "inbox_item") == 1
            assert await rows(fresh_postgres, "segment_item") == 0
            assert await rows(fresh_postgres, "blob") == 1
            page = await relay.execute(store.InboxFetch(BOX, 0), now)
            assert isinstance(page, store.Items)
            assert [n for n, _, _ in page.items] == [3]
            # The quota the dropped items held is free: two more fit, not three.
            for _ in range(2):
                await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + 60), now)
            with pytest.raises(RelayInboxFull):
                await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + 60), now)

    anyio.run(run)


def test_an_item_expired_today_is_neither_answered_nor_counted(fresh_postgres: str) -> None:
    """Its partition stays until the day is over; reads and quotas skip it."""

    async def run() -> None:
        async with opened(fresh_postgres) as relay:
            now = START
            await relay.execute(store.InboxWriters(BOX, (WRITER,), True), now)
            for _ in range(3):
                await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + 60), now)
            now += 120
            await relay.execute(store.Expire(), now)
            assert await rows(fresh_postgres, "inbox_item") == 3  # (still in today's)
            assert await relay.execute(store.InboxFetch(BOX, 0), now) == store.Items((), False)
            assert await relay.execute(store.InboxAck(BOX, (1, 2)), now) == store.Done(0)
            stored = await relay.execute(store.InboxPut(BOX, WRITER, ITEM, now + 60), now)
            assert stored == store.Stored(4)

    anyio.run(run)


def test_processes_that_make_and_drop_partitions_at_once_all_succeed(
    fresh_postgres: str,
) -> None:
    async def run() -> None:
        async with (
            opened(fresh_postgres) as first,
            opened(fresh_postgres) as second,
        ):
            now = START
            await first.execute(store.InboxWriters(BOX, (WRITER,), True), now)
            results: list[Any] = []

            async def sweep_and_put(relay: PostgresRelayStore, k: int) -> None:
                results.append(await relay.execute(store.Expire(), now + 3 * DAY))
                put = store.MirrorPut(bytes([k]) * 32, ITEM, now + 3 * DAY + 9 * DAY, True)
                results.append(await relay.execute(put, now + 3 * DAY))

            async with anyio.create_task_group() as tasks:
                for k, relay in enumerate((first, second, first, second)):
                    tasks.start_soon(sweep_and_put, relay, k)
            assert sorted(type(r).__name__ for r in results) == ["Done"] * 4 + ["Stored"] * 4

    anyio.run(run)


def test_a_put_whose_day_another_process_dropped_makes_it_again(fresh_postgres: str) -> None:
    """Clocks a little apart: one process drops a day another still puts into."""

    async def run() -> None:
        async with (
            opened(fresh_postgres) as behind,
            opened(fresh_postgres) as ahead,
        ):
            end_of_day = (START // DAY + 1) * DAY
            await behind.execute(store.InboxWriters(BOX, (WRITER,), True), START)
            # (`behind` knows today's partition exists: it put into it)
            await behind.execute(store.InboxPut(BOX, WRITER, ITEM, end_of_day - 10), START)
            await ahead.execute(store.Expire(), end_of_day + 1)
            assert START // DAY not in (await partitions(fresh_postgres))["inbox_item"]
            put = store.InboxPut(BOX, WRITER, ITEM, end_of_day - 1)
            assert await behind.execute(put, end_of_day - 2) == store.Stored(2)

    anyio.run(run)


def test_a_database_of_schema_one_is_refused_with_what_to_do(fresh_postgres: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(fresh_postgres)
        try:
            await conn.execute(
                "CREATE TABLE covey_relay_schema (version INTEGER NOT NULL);"
                "INSERT INTO covey_relay_schema VALUES (1);"
                "CREATE TABLE inbox (box BYTEA PRIMARY KEY)"
            )
        finally:
            await conn.close()
        with pytest.raises(StoreTooOld, match="new database"):
            async with opened(fresh_postgres):
                pass

    anyio.run(run)
