"""Versioned schema migrations for the SQLite store.

`MIGRATIONS[n]` takes a database at schema version n to n + 1. Each runs in
one transaction together with the `user_version` bump (SQLite keeps the
header write inside the transaction), so a crash leaves the old schema or the
new one. Never edit a published migration: append a new one.
"""

from __future__ import annotations

from typing import Final

#: Marks a database as covey's (PRAGMA application_id): ASCII "covy".
APPLICATION_ID: Final = 0x636F7679

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the device's identity and its secrets.
    (
        """CREATE TABLE keyring (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            kind TEXT NOT NULL CHECK (kind IN ('passphrase', 'none')),
            wrapped BLOB NOT NULL,
            salt BLOB NOT NULL,
            opslimit INTEGER NOT NULL,
            memlimit INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE secret (
            name TEXT PRIMARY KEY,
            sealed BLOB NOT NULL
        ) STRICT""",
        """CREATE TABLE identity (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            record BLOB NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT""",
    ),
    # 1 -> 2: groups and their op logs. Epoch keys live in `secret`, sealed,
    # under the names "epoch:<group hex>:<epoch hex>".
    (
        """CREATE TABLE grp (
            id BLOB PRIMARY KEY CHECK (length(id) = 32),
            name TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE op (
            arrival INTEGER PRIMARY KEY,
            group_id BLOB NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
            id BLOB NOT NULL,
            raw BLOB NOT NULL,
            UNIQUE (group_id, id)
        ) STRICT""",
    ),
    # 2 -> 3: devices met on the network, for `covey status` and `covey devices`.
    (
        """CREATE TABLE peer (
            device_id BLOB PRIMARY KEY CHECK (length(device_id) = 32),
            name TEXT NOT NULL,
            address TEXT NOT NULL,
            last_seen INTEGER NOT NULL,
            last_sync INTEGER
        ) STRICT""",
    ),
    # 3 -> 4: what a group's ops mean, kept beside them (written in the same
    # transaction; `last_arrival` is the last op it describes, so a view that
    # does not match the stored ops is rebuilt by a replay, not trusted), and
    # the ops that wait for a parent (kept across restarts).
    (
        """CREATE TABLE grp_view (
            group_id BLOB PRIMARY KEY REFERENCES grp (id) ON DELETE CASCADE,
            last_arrival INTEGER NOT NULL,
            doc BLOB NOT NULL
        ) STRICT""",
        "CREATE INDEX op_by_group ON op (group_id, arrival)",
        # Each op's verdict in its causal past, kept so a load judges nothing
        # twice (`judged` is 0 for ops stored before: they are judged again).
        "ALTER TABLE op ADD COLUMN judged INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE op ADD COLUMN verdict TEXT",
        "ALTER TABLE op ADD COLUMN outsider INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE pending_op (
            group_id BLOB NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
            id BLOB NOT NULL,
            raw BLOB NOT NULL,
            PRIMARY KEY (group_id, id)
        ) STRICT""",
    ),
    # 4 -> 5: history links found bad here (PROTOCOL.md section 8.1). A link
    # is opened once, when its epoch's key is learnt; a reload that forgot
    # what it showed would count a junk link as a link again.
    (
        """CREATE TABLE bad_link (
            group_id BLOB NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
            epoch BLOB NOT NULL,
            earlier BLOB NOT NULL,
            PRIMARY KEY (group_id, epoch, earlier)
        ) STRICT""",
    ),
    # 5 -> 6: the merge rules changed (PROTOCOL.md 6.2, rules 3 and 6: which
    # ops are evidence, how cycles settle), so a verdict kept under the old
    # ones may be wrong, and so may a view: every op is judged again at the
    # next load (and its verdict written back at the next save), and every
    # view is made again. A review found a store keeping a rotation valid
    # that a fresh replica of the same ops refused.
    (
        "UPDATE op SET judged = 0",
        "DELETE FROM grp_view",
    ),
    # 6 -> 7: people (PROTOCOL.md 6.4). The person this device's owner said
    # it is (`covey init --person`), proposed when it joins a group and used
    # in groups it founds; and the views are made again (they now show
    # each member's person).
    (
        "ALTER TABLE identity ADD COLUMN person TEXT",
        "DELETE FROM grp_view",
    ),
    # 7 -> 8: when this device first held each pending admission or recovery
    # claim, by its own clock (PROTOCOL.md 19.4). The veto window counts from
    # there; counted in memory, it started again at each restart, and a
    # device that sleeps every night never saw a window of days pass.
    (
        """CREATE TABLE claim_held (
            group_id BLOB NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
            claim BLOB NOT NULL,
            since INTEGER NOT NULL,
            PRIMARY KEY (group_id, claim)
        ) STRICT""",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
