"""The local store: where a device keeps its identity, secrets and (later) groups.

One SQLite database per device home, opened through aiosqlite; see
`covey.store.sqlite` for the guarantees (WAL, one transaction per change,
owner-only files).
"""
