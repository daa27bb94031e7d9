"""The relay's database stores answer every action as the reference store does.

Random sequences of actions (small pools of inboxes, segments, writers and
blobs, small quotas, time moving on), and named ones at each limit's edge,
run on `MemoryStore` and on a database store side by side (SQLite, and a
real PostgreSQL: `conftest.postgres_dsn`); after each, both gave the same
result or the same refusal. Halfway through, the database store is closed
and opened again, so what it answers is what it wrote.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.errors import RelayRefused
from covey.relay import store
from covey.relay.limits import DEFAULT_LIMITS, ITEM_SIZES
from covey.relay.postgres import PostgresRelayStore
from covey.relay.sqlite import SqliteRelayStore
from tests.relay.conftest import simulated_clock

LIMITS = dataclasses.replace(
    DEFAULT_LIMITS,
    inbox_items=3,
    inbox_bytes=3 * ITEM_SIZES[1],
    segment_items=4,
    segment_bytes=4 * ITEM_SIZES[1],
    fetch_bytes=2 * ITEM_SIZES[1],
    fetch_items=3,
    inbox_idle=100,
    ttl_max=60,
)
BOXES = [bytes([i]) * 32 for i in range(1, 3)]
SEGMENTS = [bytes([i]) * 32 for i in range(10, 12)]
WRITERS = [bytes([i]) * 32 for i in range(20, 22)]

items = st.sampled_from([b"a" * ITEM_SIZES[0], b"b" * ITEM_SIZES[1]])
expiry = st.integers(1, 80)  # seconds from now
inbox_put = st.tuples(
    st.just("inbox-put"), st.sampled_from(BOXES), st.sampled_from(WRITERS), items, expiry
)
mirror_put = st.tuples(
    st.just("mirror-put"), st.sampled_from(SEGMENTS), items, expiry, st.booleans()
)
#: Puts weigh more than the rest: quotas and pages need several in one place.
actions = st.one_of(
    inbox_put,
    inbox_put,
    mirror_put,
    mirror_put,
    st.builds(
        store.InboxWriters,
        st.sampled_from(BOXES),
        st.lists(st.sampled_from(WRITERS), min_size=1, max_size=2, unique=True).map(tuple),
        st.booleans(),
    ),
    st.tuples(
        st.just("inbox-put"), st.sampled_from(BOXES), st.sampled_from(WRITERS), items, expiry
    ),
    st.builds(store.InboxFetch, st.sampled_from(BOXES), st.integers(0, 4)),
    st.builds(
        store.InboxAck,
        st.sampled_from(BOXES),
        st.lists(st.integers(1, 6), max_size=3).map(tuple),
    ),
    st.builds(store.MirrorGet, st.sampled_from(SEGMENTS), st.integers(0, 5)),
    st.tuples(st.just("blob-put"), st.sampled_from(SEGMENTS), items, expiry, st.booleans()),
    st.tuples(st.just("blob-get"), st.integers(0, 3)),
    st.just(store.Expire()),
    st.tuples(st.just("wait"), st.integers(1, 120)),
)


def _concrete(step: Any, now: int, blobs: list[bytes]) -> store.Action | store.Expire | None:
    """The action for `step` at `now` (None: time passes). Each blob put gets a
    new ID (the session draws 32 random bytes); a get names the k-th put, or
    one never put."""
    if not isinstance(step, tuple):
        return step  # type: ignore[no-any-return]
    kind = step[0]
    if kind == "inbox-put":
        _, box, writer, item, ttl = step
        return store.InboxPut(box, writer, item, now + ttl)
    if kind == "mirror-put":
        _, segment, item, ttl, create = step
        return store.MirrorPut(segment, item, now + ttl, create)
    if kind == "blob-put":
        _, segment, item, ttl, create = step
        blobs.append(len(blobs).to_bytes(32, "big"))
        return store.BlobPut(segment, blobs[-1], item, now + ttl, create)
    if kind == "blob-get":
        k = step[1]
        return store.BlobGet(blobs[k] if k < len(blobs) else b"\xff" * 32)
    return None


def _outcome(run: Any) -> Any:
    try:
        return run()
    except RelayRefused as refusal:
        return type(refusal)


def _opener(where: Path | str) -> Any:
    """Opens the database store at `where`: a SQLite path, or a PostgreSQL DSN."""
    if isinstance(where, Path):
        return lambda: SqliteRelayStore.open(where, LIMITS)
    return lambda: PostgresRelayStore.open(where, LIMITS, database_clock=simulated_clock)


async def _empty_postgres(dsn: str) -> None:
    async with PostgresRelayStore.open(dsn, LIMITS):
        pass  # (the schema exists now)
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE inbox, inbox_item, segment, segment_item, blob")
    finally:
        await conn.close()


async def _compare(steps: list[Any], where: Path | str) -> None:
    if isinstance(where, str):
        await _empty_postgres(where)
    open_store = _opener(where)
    memory = store.MemoryStore(LIMITS)
    now = 1_000
    blobs: list[bytes] = []
    half = len(steps) // 2
    for part in (steps[:half], steps[half:]):  # (the store is reopened between them)
        async with open_store() as sqlite:
            for step in part:
                action = _concrete(step, now, blobs)
                if action is None:
                    now += step[1]
                    continue
                expected = _outcome(lambda: memory.execute(action, now))  # noqa: B023
                try:
                    got: Any = await sqlite.execute(action, now)
                except RelayRefused as refusal:
                    got = type(refusal)
                if isinstance(action, store.Expire):
                    # (its count is for logs, and differs by store: what it did
                    # is held by what every later action answers)
                    expected, got = type(expected), type(got)
                assert got == expected, (action, now)


@settings(max_examples=200, deadline=None)
@given(st.lists(actions, min_size=1, max_size=60))
def test_sqlite_answers_as_the_reference_store(steps: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(_compare, steps, Path(folder) / "relay.db")


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(actions, min_size=1, max_size=60))
def test_postgres_answers_as_the_reference_store(postgres_dsn: str, steps: list[Any]) -> None:
    anyio.run(_compare, steps, postgres_dsn)


_box, _w, _seg = BOXES[0], WRITERS[0], SEGMENTS[0]
_small, _big = b"a" * ITEM_SIZES[0], b"b" * ITEM_SIZES[1]
#: Named paths the random search reaches only by luck: each quota and page
#: limit at its edge, idleness, expiry, and the right to make things.
SCENARIOS: dict[str, list[Any]] = {
    "inbox items": [
        store.InboxWriters(_box, (_w,), True),
        *[("inbox-put", _box, _w, _small, 50)] * 4,
        store.InboxAck(_box, (1,)),
        ("inbox-put", _box, _w, _small, 50),
    ],
    "inbox bytes": [
        store.InboxWriters(_box, (_w,), True),
        *[("inbox-put", _box, _w, _big, 50)] * 2,
        ("inbox-put", _box, _w, _small, 50),
        ("inbox-put", _box, _w, _big, 50),
    ],
    "segment with blobs": [
        ("mirror-put", _seg, _small, 50, True),
        *[("blob-put", _seg, _small, 50, False)] * 3,
        ("mirror-put", _seg, _small, 50, True),
        ("blob-get", 2),
    ],
    "pages": [
        *[("mirror-put", _seg, _small, 50, True)] * 4,
        store.MirrorGet(_seg, 0),
        store.MirrorGet(_seg, 3),
        store.InboxWriters(_box, (_w,), True),
        *[("inbox-put", _box, _w, _big, 50)] * 3,
        store.InboxFetch(_box, 0),
    ],
    "expiry and idleness": [
        store.InboxWriters(_box, (_w,), True),
        ("inbox-put", _box, _w, _small, 5),
        ("inbox-put", _box, _w, _small, 50),
        ("wait", 5),
        store.InboxFetch(_box, 0),
        ("wait", 100),
        ("inbox-put", _box, _w, _small, 50),
        store.Expire(),
        store.InboxFetch(_box, 0),
        ("mirror-put", _seg, _small, 5, True),
        ("wait", 70),
        store.Expire(),
        store.MirrorGet(_seg, 0),
    ],
    "making": [
        store.InboxWriters(_box, (_w,), False),
        ("inbox-put", _box, _w, _small, 50),
        ("mirror-put", _seg, _small, 50, False),
        ("blob-put", _seg, _small, 50, False),
        store.MirrorGet(_seg, 0),
        ("blob-put", _seg, _small, 50, True),
        ("mirror-put", _seg, _small, 50, False),
        store.MirrorGet(_seg, 0),
        ("blob-get", 1),
    ],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_sqlite_answers_as_the_reference_store_at_each_edge(name: str, tmp_path: Path) -> None:
    anyio.run(_compare, SCENARIOS[name], tmp_path / "relay.db")


@pytest.mark.parametrize("name", SCENARIOS)
def test_postgres_answers_as_the_reference_store_at_each_edge(name: str, postgres_dsn: str) -> None:
    anyio.run(_compare, SCENARIOS[name], postgres_dsn)


# --- waking: what a store tells its relay process of puts made elsewhere


async def _hear_puts(opener: Any, other: Any, steps: Any) -> list[bytes | None]:
    """What `listen` on one store reports while `steps(other store)` runs."""
    heard: list[bytes | None] = []
    async with opener() as listening, other() as putting, anyio.create_task_group() as tasks:
        await tasks.start(listening.listen, heard.append)
        await steps(putting)
        with anyio.move_on_after(30):  # (a guard: puts are heard long before)
            while _BOX_B not in heard:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    return heard


_BOX_B = BOXES[1]


async def _refused_then_stored(relay: Any) -> None:
    await relay.execute(store.InboxWriters(_box, (_w,), True), 1_000)
    await relay.execute(store.InboxWriters(_BOX_B, (_w,), True), 1_000)
    with pytest.raises(RelayRefused):  # (a token the inbox does not take)
        await relay.execute(store.InboxPut(_box, WRITERS[1], _small, 1_050), 1_000)
    await relay.execute(store.MirrorPut(_seg, _small, 1_050, True), 1_000)
    await relay.execute(store.InboxPut(_BOX_B, _w, _small, 1_050), 1_000)


def test_postgres_tells_every_listening_process_of_each_inbox_put(fresh_postgres: str) -> None:
    """Only a put that was stored is told, and only inbox puts: the first thing
    heard is the second inbox's put, not the refused one or the mirror's."""
    opener = _opener(fresh_postgres)
    heard = anyio.run(_hear_puts, opener, opener, _refused_then_stored)
    assert heard == [_BOX_B]


def test_postgres_ignores_notifications_that_name_no_inbox(fresh_postgres: str) -> None:
    async def junk_then_put(relay: Any) -> None:
        import asyncpg

        conn = await asyncpg.connect(fresh_postgres)
        try:
            for junk in ("", "zz" * 32, "ab", "ab" * 33):
                await conn.execute("SELECT pg_notify('covey_relay_put', $1)", junk)
        finally:
            await conn.close()
        await _refused_then_stored(relay)

    opener = _opener(fresh_postgres)
    assert anyio.run(_hear_puts, opener, opener, junk_then_put) == [_BOX_B]


def test_postgres_listener_comes_back_and_says_it_may_have_missed_puts(
    fresh_postgres: str,
) -> None:
    async def cut_the_listener_then_put(relay: Any) -> None:
        import asyncpg

        conn = await asyncpg.connect(fresh_postgres)
        try:
            cut = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
            assert len(cut) == 1
            with anyio.fail_after(30):  # (a guard: it listens again within seconds)
                while not await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                ):
                    await anyio.sleep(0.05)
        finally:
            await conn.close()
        await _refused_then_stored(relay)

    opener = _opener(fresh_postgres)
    heard = anyio.run(_hear_puts, opener, opener, cut_the_listener_then_put)
    assert heard == [None, _BOX_B]


def test_sqlite_listens_to_nothing_its_process_notes_its_own_puts(tmp_path: Path) -> None:
    async def run() -> list[bytes | None]:
        heard: list[bytes | None] = []
        async with _opener(tmp_path / "relay.db")() as relay, anyio.create_task_group() as tasks:
            await tasks.start(relay.listen, heard.append)
            await _refused_then_stored(relay)
            tasks.cancel_scope.cancel()
        return heard

    assert anyio.run(run) == []
