"""Where a device's store lives, and making it owner-only.

The home directory is, in order of precedence: the `--home` option, the
`COVEY_HOME` environment variable, or the platform's user data directory
(`~/.local/share/covey` on Linux, from platformdirs). covey creates it with
mode 0700 and the database with mode 0600 (SQLite gives its -wal and -shm
files the database's mode), and refuses to use a database that other users
can read or write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from covey.errors import StoreError, UnsafePermissions

DB_NAME: Final = "covey.db"
ENV_HOME: Final = "COVEY_HOME"


def resolve_home(option: str | os.PathLike[str] | None) -> Path:
    """The home directory chosen by option, environment or platform default."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs  # deferred: only needed when no home is given

    return Path(platformdirs.user_data_dir("covey", appauthor=False))


def db_path(home: Path) -> Path:
    return home / DB_NAME


def prepare(home: Path) -> Path:
    """Create the home (0700) and an empty database file (0600) if missing."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = db_path(home)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, 0o600)  # in case the umask took bits away we want
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot create the store in {home}: {exc.strerror}") from exc
    return path


def check_private(path: Path) -> None:
    """Refuse a database that someone other than its owner can read or write."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise StoreError(f"{path} is not a regular file")
    if mode & 0o077:
        raise UnsafePermissions(f"{path} is readable by other users: run chmod 600 {path}")
