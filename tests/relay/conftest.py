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

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    bindir = _binaries()
    if bindir is None:
        if os.environ.get("COVEY_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed, and COVEY_REQUIRE_POSTGRES is set")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    folder = tempfile.mkdtemp(prefix="covey-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(folder, "data")

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "covey", "--no-sync")
        options = f"-k {folder} -c listen_addresses='' -c fsync=off"
        run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{folder}/log", "-w", "start")
        try:
            yield f"postgresql://covey@/postgres?host={folder}"
        finally:
            run(f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
