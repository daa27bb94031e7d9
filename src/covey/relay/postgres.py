"""The relay's store on PostgreSQL (asyncpg), for many relay processes sharing one database.

Every relay process is stateless but for its key: each action is one
transaction, and the rows it decides on are locked first (`FOR UPDATE` on
the inbox or segment), so two processes cannot both pass a quota or both
take one item number. Its answers are those of the reference store
(`covey.relay.store.MemoryStore`), action by action (the same differential
tests run against a real PostgreSQL); like it, a refused action changes
nothing but what time did.

**Waking other processes.** Each inbox put also does `NOTIFY` on one
channel (`CHANNEL`) with the inbox ID (hex) as payload, inside its
transaction, so it is delivered only if the put commits; each relay process
LISTENs on a connection of its own (`listen`) and wakes the connections
that wait on that inbox there (`covey.relay.wake`).

**Expiry by day.** The item tables (inbox items, mirror items, blobs) are
partitioned by range on `expires`, one partition per UTC day
(`inbox_item_20261203`, ...). Expiry drops the partitions whose whole day
is past, which costs the same for a million items as for one; every read
and every quota counts only items with `expires > now`, so an item that
expired today but sits in today's partition is never answered or counted.
Partitions are made ahead by each sweep (through the longest lifetime
allowed) and, for a put whose day has none, just before it; making and
dropping them takes an advisory lock (`PARTITION_LOCK`), with `IF NOT
EXISTS` / `IF EXISTS`, so several relay processes can sweep at once. A put
that meets a partition another process dropped (clocks a little apart)
makes it again and is retried once. The item tables have no foreign keys
(a partition drop would otherwise lock the inboxes and segments, and
deadlock with actions): deleting an inbox or a segment deletes its items
in the same transaction, under the row's lock.

**Schema versions.** Version 2 (partitions) is not made from version 1 in
place: a database of version 1 is refused (`StoreTooOld`) and the relay
needs a new one (`--db`); what a relay holds is at most 30 days of sealed
items that devices put again (PROTOCOL.md section 18.6).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.abc
import asyncpg

from covey.errors import (
    RelayInboxFull,
    RelayNotAllowed,
    RelayNothingThere,
    RelayRefused,
    RelaySegmentFull,
    StoreCorrupt,
    StoreTooNew,
    StoreTooOld,
)
from covey.relay import store
from covey.relay.limits import DAY, DEFAULT_LIMITS, ITEM_SIZES, RelayLimits
from covey.relay.store import (
    BlobGet,
    BlobPut,
    Expire,
    InboxAck,
    InboxFetch,
    InboxPut,
    InboxWriters,
    MirrorGet,
    MirrorPut,
)

SCHEMA_VERSION: Final = 2
HASH_BYTES: Final = 32
#: Connections one relay process keeps to the database (and one more, its
#: listener's).
POOL_SIZE: Final = 8
#: The channel inbox puts are announced on (payload: the inbox ID in hex).
CHANNEL: Final = "covey_relay_put"
#: Seconds before a lost listener connection is made again.
RELISTEN_AFTER: Final = 1.0
#: Advisory lock keys: schema changes, and making or dropping partitions.
SCHEMA_LOCK: Final = 7316
PARTITION_LOCK: Final = 7317
#: How long a sweep waits for the item tables' locks to drop a partition
#: before it leaves that to the next sweep.
DROP_LOCK_TIMEOUT: Final = "2s"
#: The tables partitioned by day of `expires`.
PARTITIONED: Final = ("inbox_item", "segment_item", "blob")

SCHEMA: Final = """
CREATE TABLE inbox (
    box BYTEA PRIMARY KEY,
    writers BYTEA NOT NULL,
    touched BIGINT NOT NULL,
    next_number BIGINT NOT NULL
);
CREATE TABLE inbox_item (
    box BYTEA NOT NULL,
    number BIGINT NOT NULL,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (box, number, expires)
) PARTITION BY RANGE (expires);
CREATE TABLE segment (
    seg BYTEA PRIMARY KEY,
    touched BIGINT NOT NULL,
    next_number BIGINT NOT NULL
);
CREATE TABLE segment_item (
    seg BYTEA NOT NULL,
    number BIGINT NOT NULL,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (seg, number, expires)
) PARTITION BY RANGE (expires);
CREATE TABLE blob (
    id BYTEA NOT NULL,
    seg BYTEA NOT NULL,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (id, expires)
) PARTITION BY RANGE (expires);
CREATE INDEX blob_seg ON blob (seg);
"""


def partition_name(table: str, day: int) -> str:
    """The partition of `table` for UTC day `day` (days since 1970-01-01)."""
    date = datetime.datetime.fromtimestamp(day * DAY, datetime.UTC)
    return f"{table}_{date:%Y%m%d}"


def day_of_partition(name: str) -> int | None:
    """The day a partition's name stands for (None: not one of ours)."""
    try:
        date = datetime.datetime.strptime(name.rsplit("_", 1)[-1], "%Y%m%d")
    except ValueError:
        return None
    return int(date.replace(tzinfo=datetime.UTC).timestamp()) // DAY


def inbox_from_payload(payload: str) -> bytes | None:
    """The inbox a notification names (None: not a 32-byte ID in hex)."""
    if len(payload) != 2 * HASH_BYTES:
        return None
    try:
        return bytes.fromhex(payload)
    except ValueError:
        return None


class _Refuse(Exception):
    def __init__(self, refusal: RelayRefused) -> None:
        self.refusal = refusal


class PostgresRelayStore:
    """A relay's store in a PostgreSQL database. Use `PostgresRelayStore.open(dsn)`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        limits: RelayLimits,
        dsn: str,
        database_clock: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self.limits = limits
        self._database_clock = database_clock or self._server_now
        #: Days whose partitions this process knows exist (made or seen).
        self._days: set[int] = set()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        dsn: str,
        limits: RelayLimits = DEFAULT_LIMITS,
        *,
        database_clock: Callable[[], Awaitable[int]] | None = None,
    ) -> AsyncIterator[PostgresRelayStore]:
        """The store on `dsn`. `database_clock`: the database server's time, which
        bounds what a sweep deletes (default: asked of the server; tests that
        run on a clock of their own give theirs)."""
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE)
        try:
            async with pool.acquire() as conn, conn.transaction():
                # (one schema change at a time, whichever relay process starts first)
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await _migrate(conn)
            yield cls(pool, limits, dsn, database_clock)
        finally:
            await pool.close()

    async def execute(self, action: store.Action | Expire, now: int) -> store.Result:
        """Carry out one action in one transaction (see `covey.relay.store`)."""
        if isinstance(action, Expire):
            # What a sweep deletes it deletes for every process: by the
            # database's clock when this process's runs ahead of it (a review
            # found a process a day ahead dropping items still live).
            now = min(now, await self._database_clock())
            await self._sweep_partitions(now)
        expires: int | None = getattr(action, "expires", None)
        if expires is None:
            return await self._transaction(action, now)
        await self._make_partitions([expires // DAY])
        try:
            return await self._transaction(action, now)
        except asyncpg.CheckViolationError:
            # (no partition for its day: another process, its clock ahead,
            # dropped it; make it again, once)
            self._days.discard(expires // DAY)
            await self._make_partitions([expires // DAY])
            return await self._transaction(action, now)

    async def _server_now(self) -> int:
        """The database server's clock, in Unix seconds."""
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT floor(extract(epoch FROM now()))::bigint"))

    async def _transaction(self, action: store.Action | Expire, now: int) -> store.Result:
        refusal: RelayRefused | None = None
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                try:
                    result = await self._run(conn, action, now)
                except _Refuse as refused:
                    refusal = refused.refusal  # (what time did is committed)
            if refusal is not None:
                raise refusal
        return result

    async def _run(self, conn: Any, action: store.Action | Expire, now: int) -> store.Result:
        return await getattr(self, store.handler(action))(conn, action, now)

    async def listen(
        self,
        put: Callable[[bytes | None], object],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Until cancelled, `put(box)` for each inbox put any relay process on this
        database commits (this one's too); `put(None)` after the listening
        connection was made again, since puts meanwhile were not heard."""
        started = False
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if not started:
                    raise
                await anyio.sleep(RELISTEN_AFTER)
                continue
            try:
                lost = await _listen_on(conn, put)
                if started:
                    put(None)
                else:
                    started = True
                    task_status.started()
                await lost.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.close(timeout=5)
            await anyio.sleep(RELISTEN_AFTER)

    # --- partitions

    async def _make_partitions(self, days: Iterable[int]) -> None:
        """Make sure the item tables have a partition for each of `days`."""
        missing = sorted(set(days) - self._days)
        if not missing:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            for day in missing:
                for table in PARTITIONED:
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)}"
                        f" PARTITION OF {table} FOR VALUES FROM ({day * DAY})"
                        f" TO ({(day + 1) * DAY})"
                    )
        self._days.update(missing)

    async def _sweep_partitions(self, now: int) -> None:
        """Make the partitions of the days a put may name from now on; drop those
        whose whole day is past (every item in them expired)."""
        await self._make_partitions(range(now // DAY, (now + self.limits.ttl_max) // DAY + 1))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
                for table in PARTITIONED:
                    for name in await conn.fetch(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                        " ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
                        table,
                    ):
                        day = day_of_partition(name[0])
                        if day is not None and (day + 1) * DAY <= now:
                            await conn.execute(f"DROP TABLE IF EXISTS {name[0]}")
                            self._days.discard(day)
        except asyncpg.LockNotAvailableError:
            pass  # (busy: the next sweep drops them)

    # --- inboxes

    async def _live_inbox(self, conn: Any, box: bytes, now: int) -> tuple[bytes, int] | None:
        row = await conn.fetchrow(
            "SELECT writers, touched, next_number FROM inbox WHERE box = $1 FOR UPDATE", box
        )
        if row is None:
            return None
        if row["touched"] + self.limits.inbox_idle <= now:
            await conn.execute("DELETE FROM inbox_item WHERE box = $1", box)
            await conn.execute("DELETE FROM inbox WHERE box = $1", box)
            return None
        return bytes(row["writers"]), int(row["next_number"])

    async def _writers(self, conn: Any, action: InboxWriters, now: int) -> store.Result:
        live = await self._live_inbox(conn, action.box, now)
        writers = b"".join(action.hashes)
        if live is None:
            if not action.create:
                raise _Refuse(RelayNotAllowed())
            await conn.execute(
                "INSERT INTO inbox (box, writers, touched, next_number) VALUES ($1, $2, $3, 1)"
                " ON CONFLICT (box) DO UPDATE SET writers = $2, touched = $3",
                action.box,
                writers,
                now,
            )
        else:
            await conn.execute(
                "UPDATE inbox SET writers = $1, touched = $2 WHERE box = $3",
                writers,
                now,
                action.box,
            )
        return store.Done(len(action.hashes))

    async def _inbox_put(self, conn: Any, action: InboxPut, now: int) -> store.Result:
        live = await self._live_inbox(conn, action.box, now)
        if live is None or not store.matches(action.writer, _split(live[0])):
            raise _Refuse(RelayNotAllowed())
        count, size = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(size), 0) FROM inbox_item"
            " WHERE box = $1 AND expires > $2",
            action.box,
            now,
        )
        limits = self.limits
        if count >= limits.inbox_items or size + len(action.item) > limits.inbox_bytes:
            raise _Refuse(RelayInboxFull())
        number = live[1]
        await conn.execute(
            "INSERT INTO inbox_item (box, number, size, expires, data) VALUES ($1, $2, $3, $4, $5)",
            action.box,
            number,
            len(action.item),
            action.expires,
            action.item,
        )
        await conn.execute(
            "UPDATE inbox SET next_number = $1 WHERE box = $2", number + 1, action.box
        )
        # (delivered when, and only if, this transaction commits)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, action.box.hex())
        return store.Stored(number)

    async def _inbox_fetch(self, conn: Any, action: InboxFetch, now: int) -> store.Result:
        if await self._live_inbox(conn, action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        await conn.execute("UPDATE inbox SET touched = $1 WHERE box = $2", now, action.box)
        return await self._page(
            conn,
            "SELECT number, data, expires FROM inbox_item WHERE box = $1 AND number > $2"
            " AND expires > $4 ORDER BY number LIMIT $3",
            action.box,
            action.after,
            now,
        )

    async def _inbox_ack(self, conn: Any, action: InboxAck, now: int) -> store.Result:
        if await self._live_inbox(conn, action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        await conn.execute("UPDATE inbox SET touched = $1 WHERE box = $2", now, action.box)
        deleted = await conn.fetch(
            "DELETE FROM inbox_item WHERE box = $1 AND number = ANY($2::bigint[])"
            " RETURNING expires",
            action.box,
            sorted(set(action.numbers)),
        )
        # (an item that had expired was not there: it is not counted)
        return store.Done(sum(1 for row in deleted if row[0] > now))

    # --- segments and blobs

    async def _segment_for_write(
        self, conn: Any, seg: bytes, size: int, create: bool, now: int
    ) -> int:
        limits = self.limits
        row = await conn.fetchrow("SELECT next_number FROM segment WHERE seg = $1 FOR UPDATE", seg)
        if row is None:
            if not create:
                raise _Refuse(RelayNotAllowed())
            if limits.segment_items < 1 or size > limits.segment_bytes:
                raise _Refuse(RelaySegmentFull())
            await conn.execute(
                "INSERT INTO segment (seg, touched, next_number) VALUES ($1, $2, 1)"
                " ON CONFLICT (seg) DO NOTHING",
                seg,
                now,
            )
            row = await conn.fetchrow(
                "SELECT next_number FROM segment WHERE seg = $1 FOR UPDATE", seg
            )
        count = used = 0
        for table in ("segment_item", "blob"):
            n, total = await conn.fetchrow(
                f"SELECT count(*), coalesce(sum(size), 0) FROM {table}"  # noqa: S608
                " WHERE seg = $1 AND expires > $2",
                seg,
                now,
            )
            count += n
            used += total
        if count >= limits.segment_items or used + size > limits.segment_bytes:
            raise _Refuse(RelaySegmentFull())
        await conn.execute("UPDATE segment SET touched = $1 WHERE seg = $2", now, seg)
        return int(row["next_number"])

    async def _mirror_put(self, conn: Any, action: MirrorPut, now: int) -> store.Result:
        number = await self._segment_for_write(
            conn, action.segment, len(action.item), action.create, now
        )
        await conn.execute(
            "INSERT INTO segment_item (seg, number, size, expires, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            action.segment,
            number,
            len(action.item),
            action.expires,
            action.item,
        )
        await conn.execute(
            "UPDATE segment SET next_number = $1 WHERE seg = $2", number + 1, action.segment
        )
        return store.Stored(number)

    async def _mirror_get(self, conn: Any, action: MirrorGet, now: int) -> store.Result:
        if await conn.fetchrow("SELECT 1 FROM segment WHERE seg = $1", action.segment) is None:
            raise _Refuse(RelayNothingThere())
        return await self._page(
            conn,
            "SELECT number, data, expires FROM segment_item WHERE seg = $1 AND number > $2"
            " AND expires > $4 ORDER BY number LIMIT $3",
            action.segment,
            action.after,
            now,
        )

    async def _blob_put(self, conn: Any, action: BlobPut, now: int) -> store.Result:
        await self._segment_for_write(conn, action.segment, len(action.blob), action.create, now)
        await conn.execute(
            "INSERT INTO blob (id, seg, size, expires, data) VALUES ($1, $2, $3, $4, $5)",
            action.blob_id,
            action.segment,
            len(action.blob),
            action.expires,
            action.blob,
        )
        return store.BlobStored(action.blob_id)

    async def _blob_get(self, conn: Any, action: BlobGet, now: int) -> store.Result:
        data = await conn.fetchval(
            "SELECT data FROM blob WHERE id = $1 AND expires > $2", action.blob_id, now
        )
        if data is None:
            raise _Refuse(RelayNothingThere())
        return store.Blob(bytes(data))

    # --- shared

    async def _page(self, conn: Any, query: str, key: bytes, after: int, now: int) -> store.Items:
        budget = self.limits.fetch_bytes
        limit = min(budget // ITEM_SIZES[0], self.limits.fetch_items) + 1
        page: list[tuple[int, bytes, int]] = []
        more = False
        for number, data, expires in await conn.fetch(query, key, after, limit, now):
            if page and (budget < len(data) or len(page) >= self.limits.fetch_items):
                more = True
                break
            page.append((int(number), bytes(data), int(expires)))
            budget -= len(data)
        return store.Items(tuple(page), more)

    async def _expire(self, conn: Any, action: Expire, now: int) -> store.Result:
        """Idle inboxes and empty old segments, with their items (whole past days
        were dropped before this, `_sweep_partitions`). The count: items and
        blobs deleted here, not those of the days dropped."""
        # (locked first, then their items deleted in a statement of its own:
        # one that sees an item a put committed while this waited for its lock)
        idle = [
            row[0]
            for row in await conn.fetch(
                "SELECT box FROM inbox WHERE touched <= $1 FOR UPDATE",
                now - self.limits.inbox_idle,
            )
        ]
        count = 0
        if idle:
            deleted = await conn.fetch(
                "DELETE FROM inbox_item WHERE box = ANY($1::bytea[]) RETURNING 1", idle
            )
            count += len(deleted)
            await conn.execute("DELETE FROM inbox WHERE box = ANY($1::bytea[])", idle)
        gone = [
            row[0]
            for row in await conn.fetch(
                "DELETE FROM segment WHERE touched <= $1"
                " AND NOT EXISTS (SELECT 1 FROM segment_item i"
                " WHERE i.seg = segment.seg AND i.expires > $2)"
                " AND NOT EXISTS (SELECT 1 FROM blob b WHERE b.seg = segment.seg"
                " AND b.expires > $2) RETURNING seg",
                now - self.limits.ttl_max,
                now,
            )
        ]
        if gone:
            for table in ("segment_item", "blob"):
                deleted = await conn.fetch(
                    f"DELETE FROM {table} WHERE seg = ANY($1::bytea[]) RETURNING 1",  # noqa: S608
                    gone,
                )
                count += len(deleted)
        return store.Done(count)


async def _listen_on(conn: Any, put: Callable[[bytes | None], object]) -> anyio.Event:
    """LISTEN on `conn`, handing each inbox heard to `put`; the event set when
    the connection is lost."""
    lost = anyio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())

    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        box = inbox_from_payload(payload)
        if box is not None:  # (anything else was not put by a relay)
            put(box)

    await conn.add_listener(CHANNEL, heard)
    return lost


async def _migrate(conn: Any) -> None:
    """Make the schema in a new database; refuse one of another version."""
    await conn.execute("CREATE TABLE IF NOT EXISTS covey_relay_schema (version INTEGER NOT NULL)")
    version = await conn.fetchval("SELECT max(version) FROM covey_relay_schema")
    if version is None:
        if await conn.fetchval("SELECT to_regclass('inbox') IS NOT NULL"):
            raise StoreCorrupt("this database has covey relay tables but no schema version")
        await conn.execute(SCHEMA)
        await conn.execute("INSERT INTO covey_relay_schema VALUES ($1)", SCHEMA_VERSION)
    elif version < SCHEMA_VERSION:
        raise StoreTooOld(
            f"this relay database is of schema {version}, before daily partitions; covey "
            "does not convert it in place: give the relay a new database (--db), and drop "
            "this one once its items have expired or been fetched"
        )
    elif version > SCHEMA_VERSION:
        raise StoreTooNew("this relay database was written by a newer covey")


def _split(writers: bytes) -> tuple[bytes, ...]:
    return tuple(writers[i : i + HASH_BYTES] for i in range(0, len(writers), HASH_BYTES))
