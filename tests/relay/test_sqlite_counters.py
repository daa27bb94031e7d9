"""The SQLite relay store's counters (schema 2): what each inbox and segment holds.

A put checks its quota against the counters in the inbox's or segment's
row, kept by triggers on every insert and delete. After any sequence of
actions (puts, acknowledgements, expiry met on the way, the sweep, idle
inboxes dropped) the counters equal what the rows hold; a store written by
schema 1 (no counters) is migrated on opening, with its counters computed
from its rows; a store from a newer covey is refused with a typed error.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.errors import RelayInboxFull, RelaySegmentFull, StoreTooNew
from covey.relay import sqlite as relay_sqlite
from covey.relay import store
from covey.relay.sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteRelayStore
from tests.relay.test_stores import (
    BOXES,
    LIMITS,
    SCENARIOS,
    SEGMENTS,
    WRITERS,
    _compare,
    actions,
)

SMALL = b"a" * 1024


def drift(path: Path) -> list[Any]:
    """Inboxes and segments whose counters differ from their rows (none, if right)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT 'inbox', box FROM inbox WHERE items IS NOT"
            " (SELECT count(*) FROM inbox_item i WHERE i.box = inbox.box) OR bytes IS NOT"
            " (SELECT coalesce(sum(size), 0) FROM inbox_item i WHERE i.box = inbox.box)"
            " UNION ALL SELECT 'segment', seg FROM segment WHERE items IS NOT"
            " (SELECT count(*) FROM segment_item i WHERE i.seg = segment.seg)"
            " + (SELECT count(*) FROM blob b WHERE b.seg = segment.seg) OR bytes IS NOT"
            " (SELECT coalesce(sum(size), 0) FROM segment_item i WHERE i.seg = segment.seg)"
            " + (SELECT coalesce(sum(size), 0) FROM blob b WHERE b.seg = segment.seg)"
        ).fetchall()
    finally:
        db.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(actions, min_size=1, max_size=60))
def test_counters_equal_the_rows_after_any_actions(steps: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "relay.db"
        anyio.run(_compare, steps, path)  # (answers as the reference store, too)
        assert drift(path) == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_counters_equal_the_rows_at_each_edge(name: str, tmp_path: Path) -> None:
    anyio.run(_compare, SCENARIOS[name], tmp_path / "relay.db")
    assert drift(tmp_path / "relay.db") == []


def _schema_1(path: Path) -> None:
    """A store as schema 1 wrote it: an inbox and a segment, nearly full, some
    of it expired (at time 1,000), a blob in the segment."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        relay_sqlite.MIGRATIONS[0]
        + f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;"
    )
    box, seg = BOXES[0], SEGMENTS[0]
    db.execute("INSERT INTO inbox VALUES (?, ?, 950, 4)", (box, WRITERS[0]))
    for number, expires in ((1, 990), (2, 5_000), (3, 5_000)):  # (1 has expired)
        db.execute(
            "INSERT INTO inbox_item VALUES (?, ?, ?, ?, ?)", (box, number, 1024, expires, SMALL)
        )
    db.execute("INSERT INTO segment VALUES (?, 950, 3)", (seg,))
    for number in (1, 2):
        db.execute("INSERT INTO segment_item VALUES (?, ?, 1024, 5000, ?)", (seg, number, SMALL))
    db.execute("INSERT INTO blob VALUES (?, ?, 1024, 5000, ?)", (b"\x07" * 32, seg, SMALL))
    db.close()


def test_a_schema_1_store_is_migrated_with_its_counters(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    _schema_1(path)
    box, seg = BOXES[0], SEGMENTS[0]

    async def go() -> None:
        async with SqliteRelayStore.open(path, LIMITS) as relay:  # (3 per inbox, 4 per segment)
            assert drift(path) == []
            # The expired item frees its place: one more put fits, then the inbox is full.
            assert await relay.execute(store.InboxPut(box, WRITERS[0], SMALL, 2_000), 1_000) == (
                store.Stored(4)
            )
            with pytest.raises(RelayInboxFull):
                await relay.execute(store.InboxPut(box, WRITERS[0], SMALL, 2_000), 1_000)
            # Two items and a blob: one more fits in the segment.
            assert await relay.execute(store.MirrorPut(seg, SMALL, 2_000, False), 1_000) == (
                store.Stored(3)
            )
            with pytest.raises(RelaySegmentFull):
                await relay.execute(store.MirrorPut(seg, SMALL, 2_000, False), 1_000)
            # What was there before the migration is still there.
            page = await relay.execute(store.InboxFetch(box, 0), 1_000)
            assert isinstance(page, store.Items)
            assert [n for n, _, _ in page.items] == [2, 3, 4]

    anyio.run(go)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()
    assert drift(path) == []


def test_a_store_from_a_newer_covey_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"

    async def open_it() -> None:
        async with SqliteRelayStore.open(path, LIMITS):
            pass

    anyio.run(open_it)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreTooNew):
        anyio.run(open_it)
