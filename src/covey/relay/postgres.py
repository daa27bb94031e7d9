"""The relay's store on PostgreSQL (asyncpg), for many relay processes sharing one database.

Every relay process is stateless but for its key: each action is one
transaction, and the rows it decides on are locked first (`FOR UPDATE` on
the inbox or segment), so two processes cannot both pass a quota or both
take one item number. Its answers are those of the reference store
(`covey.relay.store.MemoryStore`), action by action (the same differential
tests run against a real PostgreSQL); like it, a refused action changes
nothing but what time did.

Expiry is a bulk delete by the indexed expiry time (every relay process
sweeps; a sweep that finds nothing costs an index probe).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg

from covey.errors import (
    RelayInboxFull,
    RelayNotAllowed,
    RelayNothingThere,
    RelayRefused,
    RelaySegmentFull,
    StoreTooNew,
)
from covey.relay import store
from covey.relay.limits import DEFAULT_LIMITS, ITEM_SIZES, RelayLimits
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

SCHEMA_VERSION: Final = 1
HASH_BYTES: Final = 32
#: Connections one relay process keeps to the database.
POOL_SIZE: Final = 8

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS covey_relay_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    box BYTEA PRIMARY KEY,
    writers BYTEA NOT NULL,
    touched BIGINT NOT NULL,
    next_number BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_item (
    box BYTEA NOT NULL REFERENCES inbox (box) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (box, number)
);
CREATE INDEX IF NOT EXISTS inbox_item_expires ON inbox_item (expires);
CREATE TABLE IF NOT EXISTS segment (
    seg BYTEA PRIMARY KEY,
    touched BIGINT NOT NULL,
    next_number BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_item (
    seg BYTEA NOT NULL REFERENCES segment (seg) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (seg, number)
);
CREATE INDEX IF NOT EXISTS segment_item_expires ON segment_item (expires);
CREATE TABLE IF NOT EXISTS blob (
    id BYTEA PRIMARY KEY,
    seg BYTEA NOT NULL REFERENCES segment (seg) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    expires BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS blob_seg ON blob (seg);
CREATE INDEX IF NOT EXISTS blob_expires ON blob (expires);
"""


class _Refuse(Exception):
    def __init__(self, refusal: RelayRefused) -> None:
        self.refusal = refusal


class PostgresRelayStore:
    """A relay's store in a PostgreSQL database. Use `PostgresRelayStore.open(dsn)`."""

    def __init__(self, pool: asyncpg.Pool, limits: RelayLimits) -> None:
        self._pool = pool
        self.limits = limits

    @classmethod
    @asynccontextmanager
    async def open(
        cls, dsn: str, limits: RelayLimits = DEFAULT_LIMITS
    ) -> AsyncIterator[PostgresRelayStore]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE)
        try:
            async with pool.acquire() as conn, conn.transaction():
                # (one schema change at a time, whichever relay process starts first)
                await conn.execute("SELECT pg_advisory_xact_lock(7316)")
                await conn.execute(SCHEMA)
                version = await conn.fetchval("SELECT max(version) FROM covey_relay_schema")
                if version is None:
                    await conn.execute("INSERT INTO covey_relay_schema VALUES ($1)", SCHEMA_VERSION)
                elif version > SCHEMA_VERSION:
                    raise StoreTooNew("this relay database was written by a newer covey")
            yield cls(pool, limits)
        finally:
            await pool.close()

    async def execute(self, action: store.Action | Expire, now: int) -> store.Result:
        """Carry out one action in one transaction (see `covey.relay.store`)."""
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

    # --- inboxes

    async def _live_inbox(self, conn: Any, box: bytes, now: int) -> tuple[bytes, int] | None:
        row = await conn.fetchrow(
            "SELECT writers, touched, next_number FROM inbox WHERE box = $1 FOR UPDATE", box
        )
        if row is None:
            return None
        if row["touched"] + self.limits.inbox_idle <= now:
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
        await conn.execute(
            "DELETE FROM inbox_item WHERE box = $1 AND expires <= $2", action.box, now
        )
        count, size = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(size), 0) FROM inbox_item WHERE box = $1", action.box
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
        return store.Stored(number)

    async def _inbox_fetch(self, conn: Any, action: InboxFetch, now: int) -> store.Result:
        if await self._live_inbox(conn, action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        await conn.execute("UPDATE inbox SET touched = $1 WHERE box = $2", now, action.box)
        await conn.execute(
            "DELETE FROM inbox_item WHERE box = $1 AND expires <= $2", action.box, now
        )
        return await self._page(
            conn,
            "SELECT number, data, expires FROM inbox_item WHERE box = $1 AND number > $2"
            " ORDER BY number LIMIT $3",
            action.box,
            action.after,
        )

    async def _inbox_ack(self, conn: Any, action: InboxAck, now: int) -> store.Result:
        if await self._live_inbox(conn, action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        await conn.execute("UPDATE inbox SET touched = $1 WHERE box = $2", now, action.box)
        deleted = await conn.fetch(
            "DELETE FROM inbox_item WHERE box = $1 AND number = ANY($2::bigint[]) RETURNING 1",
            action.box,
            sorted(set(action.numbers)),
        )
        return store.Done(len(deleted))

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
            await conn.execute(
                f"DELETE FROM {table} WHERE seg = $1 AND expires <= $2",  # noqa: S608
                seg,
                now,
            )
            n, total = await conn.fetchrow(
                f"SELECT count(*), coalesce(sum(size), 0) FROM {table} WHERE seg = $1",  # noqa: S608
                seg,
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
        await conn.execute(
            "DELETE FROM segment_item WHERE seg = $1 AND expires <= $2", action.segment, now
        )
        return await self._page(
            conn,
            "SELECT number, data, expires FROM segment_item WHERE seg = $1 AND number > $2"
            " ORDER BY number LIMIT $3",
            action.segment,
            action.after,
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

    async def _page(self, conn: Any, query: str, key: bytes, after: int) -> store.Items:
        budget = self.limits.fetch_bytes
        limit = min(budget // ITEM_SIZES[0], self.limits.fetch_items) + 1
        page: list[tuple[int, bytes, int]] = []
        more = False
        for number, data, expires in await conn.fetch(query, key, after, limit):
            if page and (budget < len(data) or len(page) >= self.limits.fetch_items):
                more = True
                break
            page.append((int(number), bytes(data), int(expires)))
            budget -= len(data)
        return store.Items(tuple(page), more)

    async def _expire(self, conn: Any, action: Expire, now: int) -> store.Result:
        idle = now - self.limits.inbox_idle
        count = await conn.fetchval(
            "SELECT count(*) FROM inbox_item WHERE expires <= $1"
            " OR box IN (SELECT box FROM inbox WHERE touched <= $2)",
            now,
            idle,
        )
        await conn.execute("DELETE FROM inbox WHERE touched <= $1", idle)
        await conn.execute("DELETE FROM inbox_item WHERE expires <= $1", now)
        for table in ("segment_item", "blob"):
            deleted = await conn.fetch(
                f"DELETE FROM {table} WHERE expires <= $1 RETURNING 1",  # noqa: S608
                now,
            )
            count += len(deleted)
        await conn.execute(
            "DELETE FROM segment WHERE touched <= $1"
            " AND NOT EXISTS (SELECT 1 FROM segment_item i WHERE i.seg = segment.seg)"
            " AND NOT EXISTS (SELECT 1 FROM blob b WHERE b.seg = segment.seg)",
            now - self.limits.ttl_max,
        )
        return store.Done(int(count))


def _split(writers: bytes) -> tuple[bytes, ...]:
    return tuple(writers[i : i + HASH_BYTES] for i in range(0, len(writers), HASH_BYTES))
