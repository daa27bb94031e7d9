"""The SQLite store: one transaction per change, owner-only files, migrations."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from covey.core import crypto
from covey.core.identity import create_identity
from covey.errors import (
    IdentityExists,
    NoIdentity,
    PassphraseRequired,
    StoreCorrupt,
    StoreTooNew,
    UnsafePermissions,
    WrongPassphrase,
)
from covey.store.home import db_path
from covey.store.migrations import APPLICATION_ID, SCHEMA_VERSION
from covey.store.sqlite import Store
from tests.conftest import NOW, SeededRng

FAST = {"opslimit": crypto.ARGON2_OPSLIMIT_RANGE[0], "memlimit": crypto.ARGON2_MEMLIMIT_RANGE[0]}


def run(fn, *args):
    return anyio.run(fn, *args)


def in_store(home: Path, method: str, *args):
    """Open the store in `home` and call one of its methods."""

    async def call():
        async with Store.open(home) as store:
            return await getattr(store, method)(*args)

    return anyio.run(call)


async def make(home: Path, name: str = "laptop", passphrase: str | None = None, **kw):
    new = create_identity(name, NOW, SeededRng(name))
    async with Store.open(home, create=True) as store:
        await store.create_identity(new, passphrase, SeededRng("ring-" + name), **FAST, **kw)
    return new


def digest(home: Path) -> dict[str, str]:
    """Every file in the home and the hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(home.iterdir())}


def test_identity_round_trip(home: Path) -> None:
    new = run(make, home, "laptop", "pw")

    async def load():
        async with Store.open(home) as store:
            return await store.device_record(), await store.load_identity("pw")

    record, loaded = run(load)
    assert record == new.record
    assert loaded.secrets == new.secrets
    assert loaded.record_bytes == new.record_bytes


def test_files_and_folders_are_owner_only(home: Path) -> None:
    old = os.umask(0o022)  # a permissive umask must not loosen anything
    try:
        run(make, home)
    finally:
        os.umask(old)
    assert home.stat().st_mode & 0o777 == 0o700
    for path in home.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


def test_wal_files_are_owner_only_while_open(home: Path) -> None:
    run(make, home)

    async def look():
        async with Store.open(home) as store:
            await store.device_record()
            return {p.name: p.stat().st_mode & 0o777 for p in home.iterdir()}

    modes = run(look)
    assert "covey.db-wal" in modes
    assert set(modes.values()) == {0o600}


def test_open_without_create_writes_nothing(home: Path) -> None:
    async def open_missing():
        async with Store.open(home):
            pass

    with pytest.raises(NoIdentity):
        run(open_missing)
    assert not home.exists()


def test_second_identity_is_refused_and_first_kept(home: Path) -> None:
    first = run(make, home, "first")
    with pytest.raises(IdentityExists):
        run(make, home, "second")

    assert in_store(home, "device_record") == first.record


def test_replace_swaps_everything_in_one_change(home: Path) -> None:
    run(make, home, "first", "pw")
    second = run(lambda: make(home, "second", None, replace=True))

    assert in_store(home, "load_identity", None).record == second.record


def test_wrong_passphrase_changes_nothing_on_disk(home: Path) -> None:
    run(make, home, "laptop", "right")
    before = digest(home)

    async def attempt(passphrase):
        async with Store.open(home) as store:
            await store.change_passphrase(passphrase, "new", SeededRng(), **FAST)

    with pytest.raises(WrongPassphrase):
        run(attempt, "wrong")
    with pytest.raises(PassphraseRequired):
        run(attempt, None)
    assert digest(home) == before


def test_changing_the_passphrase_reseals_under_a_new_data_key(home: Path) -> None:
    new = run(make, home, "laptop", None)

    async def change_and_load():
        async with Store.open(home) as store:
            old_ring = await store.keyring()
            await store.change_passphrase(None, "pw", SeededRng("x"), **FAST)
            new_ring = await store.keyring()
            return old_ring, new_ring, await store.load_identity("pw")

    old_ring, new_ring, loaded = run(change_and_load)
    assert new_ring.kind == "passphrase"
    assert loaded.secrets == new.secrets
    # The old bare data key appears nowhere in the files any more.
    for path in home.iterdir():
        assert old_ring.wrapped not in path.read_bytes(), path

    with pytest.raises(PassphraseRequired):
        in_store(home, "load_identity", None)


def test_schema_is_versioned_and_marked(home: Path) -> None:
    run(make, home)
    with sqlite3.connect(db_path(home)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(home: Path) -> None:
    run(make, home)
    with sqlite3.connect(db_path(home)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreTooNew):
        in_store(home, "device_record")


def test_foreign_database_is_refused(home: Path) -> None:
    home.mkdir(mode=0o700)
    with sqlite3.connect(db_path(home)) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("PRAGMA user_version = 7")
    os.chmod(db_path(home), 0o600)

    with pytest.raises(StoreCorrupt):
        in_store(home, "device_record")


def test_garbage_file_is_refused(home: Path) -> None:
    home.mkdir(mode=0o700)
    db_path(home).write_bytes(b"not a database" * 100)
    os.chmod(db_path(home), 0o600)

    with pytest.raises(StoreCorrupt):
        in_store(home, "device_record")


def test_readable_by_others_is_refused(home: Path) -> None:
    run(make, home)
    os.chmod(db_path(home), 0o644)

    with pytest.raises(UnsafePermissions):
        in_store(home, "device_record")


def test_swapped_secret_is_detected(home: Path) -> None:
    run(make, home, "a")
    other = create_identity("b", NOW, SeededRng("b"))
    with sqlite3.connect(db_path(home)) as db:
        db.execute("UPDATE identity SET record = ?", (other.record_bytes,))

    with pytest.raises(StoreCorrupt):
        in_store(home, "load_identity", None)


def test_tampered_record_is_detected(home: Path) -> None:
    new = run(make, home, "a")
    tampered = bytearray(new.record_bytes)
    tampered[-1] ^= 1
    with sqlite3.connect(db_path(home)) as db:
        db.execute("UPDATE identity SET record = ?", (bytes(tampered),))

    with pytest.raises(StoreCorrupt):
        in_store(home, "device_record")


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys, anyio
    from pathlib import Path
    from covey.core import crypto
    from covey.core.identity import create_identity
    from covey.store.sqlite import Store

    home, name, crash_after = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    FAST = dict(opslimit=crypto.ARGON2_OPSLIMIT_RANGE[0], memlimit=crypto.ARGON2_MEMLIMIT_RANGE[0])

    async def main():
        async with Store.open(home, create=True) as store:
            real_execute = store._db.execute
            count = 0

            def execute(sql, *args):
                nonlocal count
                if store._db.in_transaction:
                    count += 1
                    if count > crash_after:
                        os._exit(9)  # the process dies mid-transaction
                return real_execute(sql, *args)

            store._db.execute = execute
            new = create_identity(name, 1793491200, os.urandom)
            await store.create_identity(new, None, os.urandom, replace=True, **FAST)
    anyio.run(main)
    """
)


@pytest.mark.parametrize("crash_after", range(8))  # 8 statements: up to COMMIT
def test_crash_mid_change_leaves_old_or_new(home: Path, crash_after: int) -> None:
    old = run(make, home, "old")
    result = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(home), "new", str(crash_after)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 9, result.stderr.decode()

    # The change never committed: everything is as it was, and it all fits together.
    assert in_store(home, "load_identity", None).record == old.record


def test_change_that_finishes_is_complete(home: Path) -> None:
    run(make, home, "old")
    result = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(home), "new", "1000"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()

    assert in_store(home, "load_identity", None).record.name == "new"
