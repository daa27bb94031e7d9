"""Read-only views of the store for commands that only show (no event loop, no crypto).

`covey group show` prints the view the store keeps beside a group's ops
(`Store._write_view`, written in the same transaction as the ops). Reading
it needs neither the passphrase, nor the async store, nor any of the
cryptography: this module opens the database read-only with the standard
library, checks it is a covey store of a schema it knows, and returns the
view only if it describes every stored op (the last op it describes is the
group's last stored op: an indexed lookup, not a count). Anything else
returns None, and the caller rebuilds the view through `Store`, which
replays the ops and checks every signature.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from covey.errors import NoIdentity, NoSuchGroup, StoreCorrupt, StoreTooNew
from covey.store import home as homes
from covey.store.migrations import APPLICATION_ID, SCHEMA_VERSION

#: Group IDs given as a hex prefix need at least this many digits.
MIN_ID_PREFIX = 8


def group_view(home: Path, name_or_id: str) -> tuple[bytes, dict[str, Any] | None]:
    """(the group's ID, its stored view or None if it must be rebuilt)."""
    path = homes.db_path(home)
    if not path.exists():
        raise NoIdentity()
    homes.check_private(home)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreCorrupt(f"{path} could not be opened") from exc
    try:
        return _read(db, name_or_id)
    except sqlite3.Error as exc:
        raise StoreCorrupt(f"{path} could not be read") from exc
    finally:
        db.close()


def _read(db: sqlite3.Connection, name_or_id: str) -> tuple[bytes, dict[str, Any] | None]:
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        raise StoreCorrupt("that is not a covey store")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreTooNew()
    group_id = _find(db, name_or_id)
    if version < SCHEMA_VERSION:
        return group_id, None  # (the store opens, and migrates, through `Store`)
    db.execute("BEGIN")  # one snapshot for the two reads
    row = db.execute(
        "SELECT last_arrival, doc FROM grp_view WHERE group_id = ?", (group_id,)
    ).fetchone()
    last = db.execute("SELECT max(arrival) FROM op WHERE group_id = ?", (group_id,)).fetchone()[0]
    if row is None or row[0] != last:
        return group_id, None
    try:
        document = json.loads(row[1])
    except ValueError:
        return group_id, None
    if not isinstance(document, dict) or not isinstance(document.get("epoch"), dict):
        return group_id, None
    epoch = document["epoch"].get("id")
    if not isinstance(epoch, str):
        return group_id, None
    held = db.execute(
        "SELECT 1 FROM secret WHERE name = ?", (f"epoch:{group_id.hex()}:{epoch}",)
    ).fetchone()
    document["epoch"]["key_held"] = held is not None
    return group_id, document


def _find(db: sqlite3.Connection, name_or_id: str) -> bytes:
    """A group by name, or by a hex prefix of its ID (as `Store.find_group`)."""
    row = db.execute("SELECT id FROM grp WHERE name = ?", (name_or_id,)).fetchone()
    if row is not None:
        return bytes(row[0])
    if len(name_or_id) >= MIN_ID_PREFIX:
        prefix = name_or_id.lower()
        matches = [
            bytes(r[0])
            for r in db.execute("SELECT id FROM grp")
            if bytes(r[0]).hex().startswith(prefix)
        ]
        if len(matches) == 1:
            return matches[0]
    raise NoSuchGroup(f"there is no group {name_or_id!r} on this device")
