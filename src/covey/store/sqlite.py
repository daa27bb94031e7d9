"""The device store on SQLite, through aiosqlite.

Guarantees:

* **One transaction per logical change.** Every public method that writes
  does so inside a single `BEGIN IMMEDIATE ... COMMIT`; a crash at any point
  leaves the state from before the change or after it, never a mix.
* **Durable.** WAL journal, `synchronous=FULL`, foreign keys on,
  `secure_delete` on (freed pages are zeroed, so a replaced key does not
  linger in the file).
* **Owner-only.** See `covey.store.home`.
* **Versioned.** Schema migrations (`covey.store.migrations`) run on open; a
  store from a newer covey is refused rather than misread.
* **Secrets sealed.** Private keys are stored only sealed under the data key
  (`covey.core.keyring`); public data (the device record) is stored in clear.

Argon2id runs in a worker thread so a daemon's event loop keeps serving.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiosqlite
import anyio
import anyio.to_thread

from covey.core import Rng, crypto, identity, keyring
from covey.core.identity import Identity
from covey.core.keyring import Keyring
from covey.errors import (
    CoveyError,
    GroupExists,
    IdentityExists,
    InvalidInput,
    NoIdentity,
    NoSuchGroup,
    StoreCorrupt,
    StoreError,
    StoreTooNew,
)
from covey.gcpause import collector_paused
from covey.store import home as homes
from covey.store.migrations import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:  # (imported where used: `covey group show` loads no log code)
    from covey.core.group import Group
    from covey.core.log import GroupLog
    from covey.core.node.io import Persist

#: How long to wait for another covey process holding the write lock.
BUSY_TIMEOUT_MS: Final = 5_000
#: The name of the device's private keys in the `secret` table.
DEVICE_SECRET: Final = "device"  # noqa: S105 (a row name)


class Store:
    """A device's open store. Use `Store.open(home)` as an async context manager."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    # --- opening -----------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, home: Path, *, create: bool = False) -> AsyncIterator[Store]:
        """Open the store in `home`; with `create`, make it if it is missing.

        Without `create`, a missing store is NoIdentity and nothing is
        written to disk.
        """
        path = homes.db_path(home)
        if create:
            homes.prepare(home)
        elif not path.exists():
            raise NoIdentity()
        homes.check_private(home)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await store._configure()
            await store._migrate()
            yield store
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError("the store is busy (another covey is writing); try again") from exc
            raise StoreError(f"the store could not be used: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreCorrupt(f"the store is damaged: {exc}") from exc
        finally:
            await db.close()

    async def _configure(self) -> None:
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            app_id = await self._scalar("PRAGMA application_id")
            version = await self._scalar("PRAGMA user_version")
        except Exception as exc:
            raise StoreCorrupt(f"{self.path} is not a covey store") from exc
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and version != 0):
            raise StoreCorrupt(f"{self.path} is not a covey store")
        for pragma in (
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA secure_delete = ON",
        ):
            await self._db.execute(pragma)

    async def _migrate(self) -> None:
        version = await self._scalar("PRAGMA user_version")
        if not isinstance(version, int) or version < 0:
            raise StoreCorrupt(f"{self.path} has an invalid schema version")
        if version > SCHEMA_VERSION:
            raise StoreTooNew()
        for target in range(version + 1, SCHEMA_VERSION + 1):
            async with self.transaction():
                if target == 1:
                    await self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                for statement in MIGRATIONS[target - 1]:
                    await self._db.execute(statement)
                await self._db.execute(f"PRAGMA user_version = {target}")

    # --- plumbing ----------------------------------------------------------

    async def _scalar(self, sql: str, params: tuple[object, ...] = ()) -> object:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction: committed if the block finishes, rolled back if it raises."""
        await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield self._db
        except BaseException:
            with anyio.CancelScope(shield=True):  # a cancelled caller still rolls back
                await self._db.execute("ROLLBACK")
            raise
        else:
            await self._db.execute("COMMIT")

    # --- identity ----------------------------------------------------------

    async def has_identity(self) -> bool:
        return await self._scalar("SELECT count(*) FROM identity") == 1

    async def device_record(self) -> identity.DeviceRecord:
        """This device's public record (no passphrase needed), checked."""
        record_bytes = await self._scalar("SELECT record FROM identity WHERE id = 1")
        if record_bytes is None:
            raise NoIdentity()
        return _check_record(record_bytes)

    async def create_identity(
        self,
        new: Identity,
        passphrase: str | None,
        rng: Rng,
        *,
        replace: bool = False,
        person: str | None = None,
        opslimit: int = crypto.ARGON2_OPSLIMIT,
        memlimit: int = crypto.ARGON2_MEMLIMIT,
    ) -> Keyring:
        """Store a new identity under a fresh data key, in one transaction.

        With `replace`, everything the store held before is deleted in the
        same transaction; without it, an existing identity is IdentityExists.
        """
        ring, data_key = await anyio.to_thread.run_sync(
            lambda: keyring.new_keyring(passphrase, rng, opslimit=opslimit, memlimit=memlimit)
        )
        sealed = keyring.seal_secret(data_key, DEVICE_SECRET, new.secrets.to_bytes(), rng)
        async with self.transaction() as db:
            if await self.has_identity() and not replace:
                raise IdentityExists()
            for table in ("peer", "op", "grp", "identity", "secret", "keyring"):
                await db.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
            await self._write_keyring(ring)
            await db.execute(
                "INSERT INTO secret (name, sealed) VALUES (?, ?)", (DEVICE_SECRET, sealed)
            )
            await db.execute(
                "INSERT INTO identity (id, record, created_at, person) VALUES (1, ?, ?, ?)",
                (new.record_bytes, new.record.created, person),
            )
        return ring

    async def person(self) -> str | None:
        """The person this device's owner said it is (`covey init --person`), if any."""
        value = await self._scalar("SELECT person FROM identity WHERE id = 1")
        if value is not None and not isinstance(value, str):
            raise StoreCorrupt("the identity's person is not text")
        return value

    async def keyring(self) -> Keyring:
        async with self._db.execute(
            "SELECT kind, wrapped, salt, opslimit, memlimit FROM keyring WHERE id = 1"
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NoIdentity()
        kind, wrapped, salt, opslimit, memlimit = row
        if (
            kind not in ("passphrase", "none")
            or not isinstance(wrapped, bytes)
            or not isinstance(salt, bytes)
            or not isinstance(opslimit, int)
            or not isinstance(memlimit, int)
        ):
            raise StoreCorrupt("the store's keyring is damaged")
        return Keyring(kind, wrapped, salt, opslimit, memlimit)

    async def unlock(self, passphrase: str | None) -> bytes:
        """The data key (WrongPassphrase or PassphraseRequired if it cannot be had)."""
        ring = await self.keyring()
        return await anyio.to_thread.run_sync(keyring.unlock, ring, passphrase)

    async def load_identity(self, passphrase: str | None) -> Identity:
        """This device's identity with its private keys (unlocks the store)."""
        identity_, _ = await self.open_identity(passphrase)
        return identity_

    async def open_identity(self, passphrase: str | None) -> tuple[Identity, bytes]:
        """This device's identity and the store's data key (one Argon2id run)."""
        async with self.transaction(write=False):
            record_bytes = await self._scalar("SELECT record FROM identity WHERE id = 1")
            sealed = await self._scalar(
                "SELECT sealed FROM secret WHERE name = ?", (DEVICE_SECRET,)
            )
            ring = await self.keyring()
        if record_bytes is None or sealed is None:
            raise NoIdentity()
        record = _check_record(record_bytes)
        data_key = await anyio.to_thread.run_sync(keyring.unlock, ring, passphrase)
        secret_bytes = keyring.open_secret(data_key, DEVICE_SECRET, _blob(sealed))
        try:
            secrets = identity.DeviceSecrets.from_bytes(secret_bytes)
        except InvalidInput as exc:
            raise StoreCorrupt("the device's private keys are damaged") from exc
        if not secrets.matches(record):
            raise StoreCorrupt("the device's private keys do not match its record")
        return Identity(_blob(record_bytes), record, secrets), data_key

    async def change_passphrase(
        self,
        old: str | None,
        new: str | None,
        rng: Rng,
        *,
        opslimit: int = crypto.ARGON2_OPSLIMIT,
        memlimit: int = crypto.ARGON2_MEMLIMIT,
    ) -> Keyring:
        """Set, change or remove the passphrase; re-seal every secret under a new data key.

        A wrong `old` passphrase raises WrongPassphrase before anything is written.
        """
        ring = await self.keyring()
        old_key = await anyio.to_thread.run_sync(keyring.unlock, ring, old)
        new_ring, new_key = await anyio.to_thread.run_sync(
            lambda: keyring.new_keyring(new, rng, opslimit=opslimit, memlimit=memlimit)
        )
        async with self.transaction() as db:
            current = await self.keyring()
            if not crypto.equal(current.wrapped, ring.wrapped):
                raise StoreError("the passphrase was changed by another covey process; try again")
            async with db.execute("SELECT name, sealed FROM secret") as cursor:
                rows = await cursor.fetchall()
            for name, sealed in rows:
                plain = keyring.open_secret(old_key, name, sealed)
                await db.execute(
                    "UPDATE secret SET sealed = ? WHERE name = ?",
                    (keyring.seal_secret(new_key, name, plain, rng), name),
                )
            await self._write_keyring(new_ring)
        # Move the committed pages out of the WAL and truncate it, so the old
        # wrapped data key does not linger in the -wal file.
        await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return new_ring

    # --- groups --------------------------------------------------------------

    async def list_groups(self) -> list[tuple[bytes, str]]:
        """(group ID, name) of every group on this device, by name."""
        async with self._db.execute("SELECT id, name FROM grp ORDER BY name") as cursor:
            return [(bytes(row[0]), str(row[1])) for row in await cursor.fetchall()]

    async def find_group(self, name_or_id: str | bytes) -> tuple[bytes, str]:
        """A group by name, by ID (bytes), or by a hex prefix of its ID (8+ digits)."""
        for group_id, name in await self.list_groups():
            if name_or_id in (name, group_id):
                return group_id, name
        if isinstance(name_or_id, str) and len(name_or_id) >= 8:
            matches = [
                (gid, name)
                for gid, name in await self.list_groups()
                if gid.hex().startswith(name_or_id.lower())
            ]
            if len(matches) == 1:
                return matches[0]
        shown = name_or_id.hex()[:16] if isinstance(name_or_id, bytes) else repr(name_or_id)
        raise NoSuchGroup(f"there is no group {shown} on this device")

    async def commit(
        self, persist: Persist, groups: Mapping[bytes, Group], data_key: bytes, rng: Rng
    ) -> None:
        """Carry out a node's `Persist` effect in one transaction.

        New groups (`created`) get their name row; they and the changed
        groups get the ops and keys this store lacks; `erased` groups then
        lose their epoch keys (their ops stay: this device left, and the
        leave is still to reach a member); shredded groups lose their ops
        and keys; the peers met are recorded. A crash leaves the store as it
        was before, or with all of it.
        """
        async with self.transaction() as db:
            for group_id in persist.created:
                group = groups[group_id]
                name = group.state.name
                async with db.execute("SELECT 1 FROM grp WHERE name = ?", (name,)) as cursor:
                    if await cursor.fetchone() is not None:
                        raise GroupExists(f"a group named {name!r} already exists on this device")
                await db.execute(
                    "INSERT INTO grp (id, name, created_at) VALUES (?, ?, ?)",
                    (group.id, name, group.log.order[0].content.time),
                )
            saved = []
            for group_id in (*persist.created, *persist.groups):
                if group_id in groups:
                    saved.append(await self._save_changes(groups[group_id], data_key, rng))
            for group_id in (*persist.erased, *persist.shredded):
                prefix = _epoch_prefix(group_id)
                await db.execute(
                    "DELETE FROM secret WHERE name >= ? AND name < ?", _prefix_range(prefix)
                )
            for group_id in persist.shredded:
                await db.execute("DELETE FROM grp WHERE id = ?", (group_id,))
            for peer in persist.peers:
                await self._record_peer(db, peer.device, peer.name, peer.address, peer.time)
        for mark in saved:
            mark()
        for group_id in (*persist.erased, *persist.shredded):
            if group_id in groups:
                groups[group_id].saved_keys.clear()
        if persist.shredded or persist.erased:
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def create_group(self, group: Group, data_key: bytes, rng: Rng) -> None:
        """Store a new group, its first ops and keys, in one transaction."""
        from covey.core.node.io import Persist

        await self.commit(Persist(created=(group.id,)), {group.id: group}, data_key, rng)

    async def save_group(self, group: Group, data_key: bytes, rng: Rng) -> None:
        """Store the group's ops and keys this store lacks, in one transaction."""
        from covey.core.node.io import Persist

        await self.commit(Persist(groups=(group.id,)), {group.id: group}, data_key, rng)

    async def _save_changes(self, group: Group, data_key: bytes, rng: Rng) -> Callable[[], None]:
        """Write what the store lacks of a group; the returned call marks it saved.

        Only what is new is written, from what the group tracks as unsaved
        (no read of every stored op ID or key name): new ops, new epoch keys,
        the change in the ops waiting for a parent, and the view of the
        state. The caller runs the returned call once the transaction has
        committed.
        """
        db = self._db
        log = group.log
        new_ops = list(log.unsaved)
        await db.executemany(
            "INSERT OR IGNORE INTO op (group_id, id, raw, judged, verdict, outsider)"
            " VALUES (?, ?, ?, 1, ?, ?)",
            [(group.id, op.id, op.raw, *log.verdict(op.id)) for op in new_ops],
        )
        rejudged = list(log.rejudged)
        await db.executemany(
            "UPDATE op SET judged = 1, verdict = ?, outsider = ? WHERE group_id = ? AND id = ?",
            [(*log.verdict(op_id), group.id, op_id) for op_id in rejudged],
        )
        prefix = _epoch_prefix(group.id)
        new_keys = [epoch for epoch in group.keys if epoch not in group.saved_keys]
        rows = []
        for epoch in new_keys:
            name = prefix + epoch.hex()
            rows.append((name, keyring.seal_secret(data_key, name, group.keys[epoch], rng)))
        await db.executemany("INSERT OR REPLACE INTO secret (name, sealed) VALUES (?, ?)", rows)
        pending = frozenset(log.pending)
        await db.executemany(
            "INSERT OR IGNORE INTO pending_op (group_id, id, raw) VALUES (?, ?, ?)",
            [(group.id, i, log.pending[i].raw) for i in pending - log.pending_saved],
        )
        await db.executemany(
            "DELETE FROM pending_op WHERE group_id = ? AND id = ?",
            [(group.id, i) for i in log.pending_saved - pending],
        )
        new_bad = sorted(group.bad_links - group.saved_bad_links)
        await db.executemany(
            "INSERT OR IGNORE INTO bad_link (group_id, epoch, earlier) VALUES (?, ?, ?)",
            [(group.id, epoch, earlier) for epoch, earlier in new_bad],
        )
        held = dict(group.claims_held)
        await db.executemany(
            "INSERT OR REPLACE INTO claim_held (group_id, claim, since) VALUES (?, ?, ?)",
            [
                (group.id, claim, since)
                for claim, since in sorted(held.items())
                if group.saved_claims_held.get(claim) != since
            ],
        )
        await db.executemany(
            "DELETE FROM claim_held WHERE group_id = ? AND claim = ?",
            [(group.id, claim) for claim in sorted(group.saved_claims_held.keys() - held.keys())],
        )
        if log.state is not None:
            await self._write_view(group.log, group.me.device_id.raw)

        def saved() -> None:
            log.mark_saved(len(new_ops))
            del log.rejudged[: len(rejudged)]
            group.saved_keys.update(new_keys)
            group.saved_bad_links.update(new_bad)
            log.pending_saved = pending
            group.saved_claims_held = held

        return saved

    async def _write_view(self, log: GroupLog, me: bytes) -> None:
        """Keep what the group's stored ops mean beside them (`covey.store.reader`)."""
        from covey.core.node.views import describe_log

        document = json.dumps(describe_log(log, me), separators=(",", ":")).encode()
        last = await self._scalar("SELECT max(arrival) FROM op WHERE group_id = ?", (log.group_id,))
        await self._db.execute(
            "INSERT OR REPLACE INTO grp_view (group_id, last_arrival, doc) VALUES (?, ?, ?)",
            (log.group_id, last, document),
        )

    async def rebuild_view(self, group_id: bytes) -> dict[str, Any]:
        """A group's view made again from its ops, every signature checked, and stored.

        For a view that `covey.store.reader` found missing or not matching
        the stored ops (a store from before views, or damaged): it is rebuilt,
        not trusted.
        """
        from covey.core.node.views import describe_log

        me = (await self.device_record()).device_id.raw
        log = await self.load_log(group_id, verify=True)
        async with self.transaction():
            await self._write_view(log, me)
        document = describe_log(log, me)
        name = _epoch_prefix(group_id) + str(document["epoch"]["id"])
        held = await self._scalar("SELECT 1 FROM secret WHERE name = ?", (name,))
        document["epoch"]["key_held"] = held is not None
        return document

    async def _stored_ops(
        self, group_id: bytes
    ) -> tuple[list[bytes], list[bytes], dict[bytes, tuple[str | None, int]]]:
        """(the group's ops in arrival order, its pending ops, the verdicts kept with them)."""
        async with self._db.execute(
            "SELECT raw, id, judged, verdict, outsider FROM op WHERE group_id = ? ORDER BY arrival",
            (group_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        raws = [bytes(row[0]) for row in rows]
        verdicts = {bytes(row[1]): (row[3], int(row[4])) for row in rows if row[2]}
        async with self._db.execute(
            "SELECT raw FROM pending_op WHERE group_id = ?", (group_id,)
        ) as cursor:
            pending = [bytes(row[0]) for row in await cursor.fetchall()]
        return raws, pending, verdicts

    async def load_group(self, group_id: bytes, me: Identity, data_key: bytes) -> Group:
        """A group as stored: its ops (not verified again), pending ops, epoch keys and
        the history links found bad."""
        from covey.core.group import Group

        prefix = _epoch_prefix(group_id)
        async with self.transaction(write=False) as db:
            raws, pending, verdicts = await self._stored_ops(group_id)
            async with db.execute(
                "SELECT name, sealed FROM secret WHERE name >= ? AND name < ?",
                _prefix_range(prefix),
            ) as cursor:
                sealed_keys = await cursor.fetchall()
            async with db.execute(
                "SELECT epoch, earlier FROM bad_link WHERE group_id = ?", (group_id,)
            ) as cursor:
                bad_links = [(bytes(row[0]), bytes(row[1])) for row in await cursor.fetchall()]
            async with db.execute(
                "SELECT claim, since FROM claim_held WHERE group_id = ?", (group_id,)
            ) as cursor:
                claims_held = {bytes(row[0]): int(row[1]) for row in await cursor.fetchall()}
        if not raws:
            raise NoSuchGroup()
        held = {
            bytes.fromhex(str(name)[len(prefix) :]): keyring.open_secret(
                data_key, str(name), _blob(sealed)
            )
            for name, sealed in sealed_keys
        }
        try:
            group = Group.restore(
                me, group_id, raws, pending, held, verdicts, bad_links, claims_held
            )
        except InvalidInput as exc:
            raise StoreCorrupt("a stored op of that group does not fit its log") from exc
        if len(group.log) != len(raws):
            raise StoreCorrupt("some stored ops of that group do not fit its log")
        return group

    async def load_log(self, group_id: bytes, *, verify: bool = False) -> GroupLog:
        """A group's op log as stored, without keys (no passphrase needed).

        Enough to read members, roles, epochs and where this device stands
        (`covey status`, `covey devices`): ops are public to the members,
        and stored in clear; only epoch keys are sealed. With `verify`,
        every signature is checked again (to rebuild a view from scratch).
        """
        from covey.core.log import GroupLog

        raws, pending, verdicts = await self._stored_ops(group_id)
        if not raws:
            raise NoSuchGroup()
        log = GroupLog(group_id)
        try:
            with collector_paused():
                if verify:
                    for raw in raws:
                        log.receive(raw)
                else:
                    log.restore(raws, pending, verdicts)
        except InvalidInput as exc:
            raise StoreCorrupt("a stored op of that group does not verify") from exc
        if len(log) != len(raws):
            raise StoreCorrupt("some stored ops of that group do not fit its log")
        return log

    async def shred_group(self, group_id: bytes) -> None:
        """Delete a group, its ops and its keys (crypto-erase), in one transaction."""
        from covey.core.node.io import Persist

        await self.commit(Persist(shredded=(group_id,)), {}, b"", lambda n: b"")

    async def _record_peer(
        self, db: aiosqlite.Connection, device_id: bytes, name: str, address: str, time: int
    ) -> None:
        await db.execute(
            "INSERT INTO peer (device_id, name, address, last_seen, last_sync)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
            " name = excluded.name, address = excluded.address,"
            " last_seen = excluded.last_seen, last_sync = excluded.last_sync",
            (device_id, name, address, time, time),
        )

    async def peers(self) -> list[tuple[bytes, str, str, int, int | None]]:
        """(device ID, name, address, last seen, last sync) of every device met."""
        async with self._db.execute(
            "SELECT device_id, name, address, last_seen, last_sync FROM peer ORDER BY name"
        ) as cursor:
            return [
                (bytes(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4])
                for r in await cursor.fetchall()
            ]

    async def _write_keyring(self, ring: Keyring) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO keyring (id, kind, wrapped, salt, opslimit, memlimit)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (ring.kind, ring.wrapped, ring.salt, ring.opslimit, ring.memlimit),
        )


def _epoch_prefix(group_id: bytes) -> str:
    return f"epoch:{group_id.hex()}:"


def _prefix_range(prefix: str) -> tuple[str, str]:
    """(low, high) bounds of the names starting with `prefix` (an indexed range scan)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise StoreCorrupt("the store holds a value of the wrong type")
    return value


def _check_record(value: object) -> identity.DeviceRecord:
    try:
        return identity.open_device_record(_blob(value)).body
    except CoveyError as exc:
        raise StoreCorrupt("the stored device record does not verify") from exc
