"""Fixtures for the relay tests: a throwaway PostgreSQL server of their own.

`postgres_dsn` starts one PostgreSQL cluster for the session, in a fresh
directory, listening only on a Unix socket there (no TCP port, nothing
outside the directory), and stops it at the end. As root it runs as the
`postgres` user (the server refuses to run as root). Where PostgreSQL is
not installed the tests that need it are skipped, unless
COVEY_REQUIRE_POSTGRES is set (CI sets it, and installs PostgreSQL), when
they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.relay.pgcluster import binaries, throwaway_postgres


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    bindir = binaries()
    if bindir is None:
        if os.environ.get("COVEY_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed, and COVEY_REQUIRE_POSTGRES is set")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    with throwaway_postgres(bindir) as dsn:
        yield dsn


@pytest.fixture
def fresh_postgres(postgres_dsn: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL, for one test."""
    import secrets

    import anyio
    import asyncpg

    name = f"covey_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    anyio.run(run, f"CREATE DATABASE {name}")
    try:
        yield postgres_dsn.replace("/postgres?", f"/{name}?")
    finally:
        anyio.run(run, f"DROP DATABASE {name} WITH (FORCE)")


async def simulated_clock() -> int:
    """The database's clock as tests that run on simulated time give it: never
    behind theirs (a sweep goes by the earlier of the two clocks)."""
    return 1 << 62
