"""The relay's embedded store: one SQLite file (the standard library's sqlite3).

Each action is one `BEGIN IMMEDIATE ... COMMIT` (`SqliteRelayStore.execute`),
so a crash leaves the store before or after it, and a quota is checked and
used in one step. Its answers are those of the reference store
(`covey.relay.store.MemoryStore`), which a differential test holds it to,
action by action; like it, a refused action changes nothing but what time
did (expired items and idle inboxes are deleted when met).

Durable (WAL, `synchronous=FULL`), `secure_delete` on (an acknowledged
item's bytes do not linger in free pages), the file owner-only.

Each action runs whole in a worker thread (`anyio.to_thread`): aiosqlite,
which the device store uses, hops once per statement, and a put is eight
statements (benchmarks/relay_throughput.py measured the difference).

**Group commit.** Actions from many connections wait in one queue; a
writer task takes every action waiting (at most `MAX_BATCH`) and runs them
in one transaction, each in a savepoint of its own, so one commit (one
fsync) makes a batch durable. Each action's answer is given only after
that commit: a put is still durable before it is answered, a crash still
leaves every action before or after, and an action that fails rolls back
to its savepoint only (a refused one keeps what time did, as alone).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
import anyio.to_thread

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

#: Marks the file as a covey relay store (PRAGMA application_id).
APPLICATION_ID: Final = 0x63767279  # "cvry"
#: Write-token hashes are kept concatenated, 32 bytes each.
HASH_BYTES: Final = 32

SCHEMA: Final = """
CREATE TABLE inbox (
    box BLOB PRIMARY KEY,
    writers BLOB NOT NULL,
    touched INTEGER NOT NULL,
    next_number INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE inbox_item (
    box BLOB NOT NULL REFERENCES inbox (box) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (box, number)
);
CREATE INDEX inbox_item_expires ON inbox_item (expires);
CREATE TABLE segment (
    seg BLOB PRIMARY KEY,
    touched INTEGER NOT NULL,
    next_number INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE segment_item (
    seg BLOB NOT NULL REFERENCES segment (seg) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (seg, number)
);
CREATE INDEX segment_item_expires ON segment_item (expires);
CREATE TABLE blob (
    id BLOB PRIMARY KEY,
    seg BLOB NOT NULL REFERENCES segment (seg) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX blob_seg ON blob (seg);
CREATE INDEX blob_expires ON blob (expires);
"""

#: 1 -> 2: what an inbox or segment holds is counted in its row (items and
#: bytes; a segment's blobs count in its own), so a put checks its quota
#: in O(1) instead of summing every item it holds (its SQL took 2.3 ms in
#: an inbox of 990 items against 0.1 ms in an empty one; 0.05-0.1 ms now).
#: Triggers keep the counters: every insert and delete of an item or blob,
#: whichever statement made it (a put, an acknowledgement, expiry on the
#: way, the sweep, a cascade), moves its holder's counters in the same
#: statement, so they cannot drift from the rows. And an index by holder
#: and expiry, so the expired items of one inbox or segment are found
#: without reading the others it holds.
COUNTERS: Final = """
ALTER TABLE inbox ADD COLUMN items INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segment ADD COLUMN items INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segment ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE inbox SET
    items = (SELECT count(*) FROM inbox_item WHERE inbox_item.box = inbox.box),
    bytes = (SELECT coalesce(sum(size), 0) FROM inbox_item WHERE inbox_item.box = inbox.box);
UPDATE segment SET
    items = (SELECT count(*) FROM segment_item WHERE segment_item.seg = segment.seg)
        + (SELECT count(*) FROM blob WHERE blob.seg = segment.seg),
    bytes = (SELECT coalesce(sum(size), 0) FROM segment_item WHERE segment_item.seg = segment.seg)
        + (SELECT coalesce(sum(size), 0) FROM blob WHERE blob.seg = segment.seg);
CREATE INDEX inbox_item_box_expires ON inbox_item (box, expires);
CREATE INDEX segment_item_seg_expires ON segment_item (seg, expires);
DROP INDEX blob_seg;
CREATE INDEX blob_seg_expires ON blob (seg, expires);
CREATE TRIGGER inbox_item_in AFTER INSERT ON inbox_item BEGIN
    UPDATE inbox SET items = items + 1, bytes = bytes + NEW.size WHERE box = NEW.box;
END;
CREATE TRIGGER inbox_item_out AFTER DELETE ON inbox_item BEGIN
    UPDATE inbox SET items = items - 1, bytes = bytes - OLD.size WHERE box = OLD.box;
END;
CREATE TRIGGER segment_item_in AFTER INSERT ON segment_item BEGIN
    UPDATE segment SET items = items + 1, bytes = bytes + NEW.size WHERE seg = NEW.seg;
END;
CREATE TRIGGER segment_item_out AFTER DELETE ON segment_item BEGIN
    UPDATE segment SET items = items - 1, bytes = bytes - OLD.size WHERE seg = OLD.seg;
END;
CREATE TRIGGER blob_in AFTER INSERT ON blob BEGIN
    UPDATE segment SET items = items + 1, bytes = bytes + NEW.size WHERE seg = NEW.seg;
END;
CREATE TRIGGER blob_out AFTER DELETE ON blob BEGIN
    UPDATE segment SET items = items - 1, bytes = bytes - OLD.size WHERE seg = OLD.seg;
END;
"""

#: `MIGRATIONS[n]` takes a store at schema version n to n + 1 (a new file
#: goes through all of them). Never edit one that shipped: append.
MIGRATIONS: Final = (SCHEMA, COUNTERS)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class _Refuse(Exception):
    """Commit what time did, then refuse (carries the refusal)."""

    def __init__(self, refusal: RelayRefused) -> None:
        self.refusal = refusal


#: Actions one transaction carries at most (group commit).
MAX_BATCH: Final = 64
#: Actions waiting for the writer at most; more wait to be queued.
MAX_QUEUED: Final = 1024


class _Waiting:
    """One action in the queue, and what became of it."""

    __slots__ = ("action", "done", "error", "now", "result")

    def __init__(self, action: store.Action | Expire, now: int) -> None:
        self.action = action
        self.now = now
        self.done = anyio.Event()
        self.result: store.Result | None = None
        self.error: BaseException | None = None


class SqliteRelayStore:
    """A relay's store in one SQLite file. Use `SqliteRelayStore.open(path)`."""

    def __init__(self, db: sqlite3.Connection, limits: RelayLimits) -> None:
        self._db = db
        self.limits = limits
        #: The queue to the one writer (the relay's connections run
        #: concurrently; their transactions must not mix).
        self._send, self._receive = anyio.create_memory_object_stream[_Waiting](MAX_QUEUED)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, limits: RelayLimits = DEFAULT_LIMITS
    ) -> AsyncIterator[SqliteRelayStore]:
        new = not path.exists()
        if new:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = await anyio.to_thread.run_sync(_connect, path)
        try:
            await anyio.to_thread.run_sync(cls._migrate, db)
            opened = cls(db, limits)
            async with opened._send, opened._receive, anyio.create_task_group() as tasks:
                tasks.start_soon(opened._writer)
                try:
                    yield opened
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(db.close)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = _one(db, "PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StoreTooNew("this relay store was written by a newer covey")
        if version < SCHEMA_VERSION:  # (one script, one transaction: whole or not at all)
            db.executescript(
                "BEGIN IMMEDIATE;"
                + "".join(MIGRATIONS[version:])
                + f"PRAGMA application_id = {APPLICATION_ID};"
                + f"PRAGMA user_version = {SCHEMA_VERSION};"
                + "COMMIT;"
            )

    async def listen(
        self,
        put: Callable[[bytes | None], object],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Nothing to listen to: one relay process owns the file, and it notes its
        own puts (the PostgreSQL store hears other processes' puts here)."""
        task_status.started()
        await anyio.sleep_forever()

    async def execute(self, action: store.Action | Expire, now: int) -> store.Result:
        """Carry out one action, durably, before answering (see `covey.relay.store`)."""
        waiting = _Waiting(action, now)
        await self._send.send(waiting)
        await waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.result is not None
        return waiting.result

    async def _writer(self) -> None:
        """Run what waits, a batch per transaction, for as long as the store is open;
        when it closes, whatever still waits is told so (nobody waits forever)."""
        try:
            async for first in self._receive:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                try:
                    await anyio.to_thread.run_sync(self._transaction, batch)
                except Exception as exc:  # the commit failed: no action of the batch happened
                    for waiting in batch:
                        waiting.result, waiting.error = None, exc
                for waiting in batch:
                    waiting.done.set()
        finally:
            while True:
                try:
                    waiting = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                waiting.error = anyio.ClosedResourceError()
                waiting.done.set()

    def _transaction(self, batch: list[_Waiting]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for waiting in batch:
                db.execute("SAVEPOINT action")
                try:
                    waiting.result = self._run(waiting.action, waiting.now)
                except _Refuse as refused:
                    waiting.error = refused.refusal  # (what time did is kept)
                except Exception as exc:  # this action only (review: one failed them all)
                    if not db.in_transaction:
                        raise
                    db.execute("ROLLBACK TO action")
                    waiting.error = exc
                db.execute("RELEASE action")
            db.execute("COMMIT")
        except BaseException:
            # (A COMMIT that failed may leave the transaction open: close it, or
            # every later batch fails at BEGIN: review finding.)
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _run(self, action: store.Action | Expire, now: int) -> store.Result:
        handle: Callable[[Any, int], store.Result] = getattr(self, store.handler(action))
        return handle(action, now)

    # --- inboxes

    def _live_inbox(self, box: bytes, now: int) -> tuple[bytes, int, int, int] | None:
        """(writers, next number, items, bytes) of a live inbox; an idle one is deleted."""
        row = _row(
            self._db,
            "SELECT writers, touched, next_number, items, bytes FROM inbox WHERE box = ?",
            box,
        )
        if row is None:
            return None
        writers, touched, next_number, count, size = row
        if touched + self.limits.inbox_idle <= now:
            self._db.execute("DELETE FROM inbox WHERE box = ?", (box,))
            return None
        return writers, next_number, count, size

    def _writers(self, action: InboxWriters, now: int) -> store.Result:
        live = self._live_inbox(action.box, now)
        writers = b"".join(action.hashes)
        if live is None:
            if not action.create:
                raise _Refuse(RelayNotAllowed())
            self._db.execute(
                "INSERT INTO inbox (box, writers, touched, next_number) VALUES (?, ?, ?, 1)",
                (action.box, writers, now),
            )
        else:
            self._db.execute(
                "UPDATE inbox SET writers = ?, touched = ? WHERE box = ?",
                (writers, now, action.box),
            )
        return store.Done(len(action.hashes))

    def _inbox_put(self, action: InboxPut, now: int) -> store.Result:
        live = self._live_inbox(action.box, now)
        if live is None or not store.matches(action.writer, _split(live[0])):
            raise _Refuse(RelayNotAllowed())
        _, number, count, size = live
        expired = self._db.execute(
            "DELETE FROM inbox_item WHERE box = ? AND expires <= ?", (action.box, now)
        )
        if expired.rowcount:  # (the triggers moved the counters)
            count, size = _row(self._db, "SELECT items, bytes FROM inbox WHERE box = ?", action.box)
        limits = self.limits
        if count >= limits.inbox_items or size + len(action.item) > limits.inbox_bytes:
            raise _Refuse(RelayInboxFull())
        self._db.execute(
            "INSERT INTO inbox_item (box, number, size, expires, data) VALUES (?, ?, ?, ?, ?)",
            (action.box, number, len(action.item), action.expires, action.item),
        )
        self._db.execute("UPDATE inbox SET next_number = ? WHERE box = ?", (number + 1, action.box))
        return store.Stored(number)

    def _inbox_fetch(self, action: InboxFetch, now: int) -> store.Result:
        if self._live_inbox(action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        self._db.execute("UPDATE inbox SET touched = ? WHERE box = ?", (now, action.box))
        self._db.execute("DELETE FROM inbox_item WHERE box = ? AND expires <= ?", (action.box, now))
        return self._page(
            "SELECT number, data, expires FROM inbox_item WHERE box = ? AND number > ?"
            " ORDER BY number LIMIT ?",
            action.box,
            action.after,
        )

    def _inbox_ack(self, action: InboxAck, now: int) -> store.Result:
        if self._live_inbox(action.box, now) is None:
            raise _Refuse(RelayNothingThere())
        self._db.execute("UPDATE inbox SET touched = ? WHERE box = ?", (now, action.box))
        self._db.execute("DELETE FROM inbox_item WHERE box = ? AND expires <= ?", (action.box, now))
        count = 0
        for number in set(action.numbers):
            cursor = self._db.execute(
                "DELETE FROM inbox_item WHERE box = ? AND number = ?", (action.box, number)
            )
            count += cursor.rowcount
        return store.Done(count)

    # --- segments and blobs

    def _segment_for_write(self, seg: bytes, size: int, create: bool, now: int) -> int:
        """The next item number of the segment to put `size` bytes into (made if new)."""
        row = _row(self._db, "SELECT next_number, items, bytes FROM segment WHERE seg = ?", seg)
        if row is None and not create:
            raise _Refuse(RelayNotAllowed())
        count = used = 0
        if row is not None:
            _, count, used = row
            expired = 0
            for table in ("segment_item", "blob"):
                expired += self._db.execute(
                    f"DELETE FROM {table} WHERE seg = ? AND expires <= ?",  # noqa: S608
                    (seg, now),
                ).rowcount
            if expired:  # (the triggers moved the counters)
                count, used = _row(self._db, "SELECT items, bytes FROM segment WHERE seg = ?", seg)
        limits = self.limits
        if count >= limits.segment_items or used + size > limits.segment_bytes:
            raise _Refuse(RelaySegmentFull())
        if row is None:
            self._db.execute(
                "INSERT INTO segment (seg, touched, next_number) VALUES (?, ?, 1)", (seg, now)
            )
            return 1
        self._db.execute("UPDATE segment SET touched = ? WHERE seg = ?", (now, seg))
        return int(row[0])

    def _mirror_put(self, action: MirrorPut, now: int) -> store.Result:
        number = self._segment_for_write(action.segment, len(action.item), action.create, now)
        self._db.execute(
            "INSERT INTO segment_item (seg, number, size, expires, data) VALUES (?, ?, ?, ?, ?)",
            (action.segment, number, len(action.item), action.expires, action.item),
        )
        self._db.execute(
            "UPDATE segment SET next_number = ? WHERE seg = ?", (number + 1, action.segment)
        )
        return store.Stored(number)

    def _mirror_get(self, action: MirrorGet, now: int) -> store.Result:
        if _row(self._db, "SELECT 1 FROM segment WHERE seg = ?", action.segment) is None:
            raise _Refuse(RelayNothingThere())
        self._db.execute(
            "DELETE FROM segment_item WHERE seg = ? AND expires <= ?", (action.segment, now)
        )
        return self._page(
            "SELECT number, data, expires FROM segment_item WHERE seg = ? AND number > ?"
            " ORDER BY number LIMIT ?",
            action.segment,
            action.after,
        )

    def _blob_put(self, action: BlobPut, now: int) -> store.Result:
        self._segment_for_write(action.segment, len(action.blob), action.create, now)
        self._db.execute(
            "INSERT INTO blob (id, seg, size, expires, data) VALUES (?, ?, ?, ?, ?)",
            (action.blob_id, action.segment, len(action.blob), action.expires, action.blob),
        )
        return store.BlobStored(action.blob_id)

    def _blob_get(self, action: BlobGet, now: int) -> store.Result:
        row = _row(
            self._db, "SELECT data FROM blob WHERE id = ? AND expires > ?", action.blob_id, now
        )
        if row is None:
            raise _Refuse(RelayNothingThere())
        return store.Blob(row[0])

    # --- shared

    def _page(self, query: str, key: bytes, after: int) -> store.Items:
        budget = self.limits.fetch_bytes
        limit = min(budget // ITEM_SIZES[0], self.limits.fetch_items) + 1
        page: list[tuple[int, bytes, int]] = []
        more = False
        for number, data, expires in self._db.execute(query, (key, after, limit)):
            if page and (budget < len(data) or len(page) >= self.limits.fetch_items):
                more = True
                break
            page.append((number, data, expires))
            budget -= len(data)
        return store.Items(tuple(page), more)

    def _expire(self, action: Expire, now: int) -> store.Result:
        db = self._db
        idle = now - self.limits.inbox_idle
        count = _one(
            db,
            "SELECT count(*) FROM inbox_item WHERE expires <= ?"
            " OR box IN (SELECT box FROM inbox WHERE touched <= ?)",
            now,
            idle,
        )
        db.execute("DELETE FROM inbox WHERE touched <= ?", (idle,))
        db.execute("DELETE FROM inbox_item WHERE expires <= ?", (now,))
        for table in ("segment_item", "blob"):
            count += _one(db, f"SELECT count(*) FROM {table} WHERE expires <= ?", now)  # noqa: S608
            db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))  # noqa: S608
        db.execute(
            "DELETE FROM segment WHERE touched <= ?"
            " AND seg NOT IN (SELECT seg FROM segment_item)"
            " AND seg NOT IN (SELECT seg FROM blob)",
            (now - self.limits.ttl_max,),
        )
        return store.Done(count)


def _split(writers: bytes) -> tuple[bytes, ...]:
    return tuple(writers[i : i + HASH_BYTES] for i in range(0, len(writers), HASH_BYTES))


def _row(db: sqlite3.Connection, query: str, *args: Any) -> Any:
    return db.execute(query, args).fetchone()


def _one(db: sqlite3.Connection, query: str, *args: Any) -> int:
    row = _row(db, query, *args)
    return int(row[0])


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in (
        "journal_mode = WAL",
        "synchronous = FULL",
        "foreign_keys = ON",
        "secure_delete = ON",
        "busy_timeout = 5000",
    ):
        db.execute(f"PRAGMA {pragma}")
    return db
