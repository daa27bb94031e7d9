"""A throwaway PostgreSQL server: for the relay tests and the relay benchmarks.

`throwaway_postgres()` starts one PostgreSQL cluster in a fresh directory,
listening only on a Unix socket there (no TCP port, nothing outside the
directory), yields its URL, and stops and deletes it. As root it runs as
the `postgres` user (the server refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def binaries() -> str | None:
    """Where Debian's PostgreSQL programs are, if it is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@contextmanager
def throwaway_postgres(bindir: str, *, fsync: bool = False) -> Iterator[str]:
    """A running cluster's URL. `fsync=False` for tests (nothing survives them
    anyway); a benchmark of durable stores keeps it on."""
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
        options = f"-k {folder} -c listen_addresses='' -c fsync={'on' if fsync else 'off'}"
        run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{folder}/log", "-w", "start")
        try:
            yield f"postgresql://covey@/postgres?host={folder}"
        finally:
            run(f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
