"""Where a device's store lives, and keeping it owner-only.

The home directory is, in order of precedence: the `--home` option, the
`COVEY_HOME` environment variable, or the platform's user data directory
(`~/.local/share/covey` on Linux, from platformdirs).

covey creates the home (and any missing parent) with mode 0700 and the
database with mode 0600; SQLite gives its `-wal` and `-shm` files the
database's mode. Before every use it checks that the home is a directory
owned by this user that nobody else can write to, and that the database and
any `-wal`/`-shm` files are regular files (not links) owned by this user and
closed to everyone else. Otherwise another local user could, for example,
plant a world-writable `-wal` file for covey to write keys into.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from covey.errors import InvalidArgument, StoreError, UnsafePermissions

DB_NAME: Final = "covey.db"
SIDE_FILES: Final = ("covey.db-wal", "covey.db-shm", "covey.db-journal")
ENV_HOME: Final = "COVEY_HOME"


def resolve_home(option: str | os.PathLike[str] | None) -> Path:
    """The home directory chosen by option, environment or platform default."""
    chosen = option or os.environ.get(ENV_HOME)
    if chosen:
        try:
            return Path(chosen).expanduser()
        except RuntimeError as exc:  # ~nosuchuser
            raise InvalidArgument(f"cannot find the home directory in {chosen}") from exc
    import platformdirs  # deferred: only needed when no home is given

    return Path(platformdirs.user_data_dir("covey", appauthor=False))


def db_path(home: Path) -> Path:
    return home / DB_NAME


def _make_directories(home: Path) -> None:
    missing = []
    current = home
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # whatever the umask took away or left


def prepare(home: Path) -> Path:
    """Create the home (0700) and an empty database file (0600) if missing."""
    path = db_path(home)
    try:
        _make_directories(home)
        check_home(home)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, 0o600)
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot create the store in {home}: {exc.strerror}") from exc
    return path


def check_home(home: Path) -> None:
    """Refuse a home that is not ours or that others can write to."""
    try:
        info = home.stat()
    except OSError as exc:
        raise StoreError(f"cannot use {home}: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{home} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafePermissions(f"{home} belongs to another user")
    if info.st_mode & 0o022:
        raise UnsafePermissions(f"others can write to {home}: run chmod 700 {home}")


def _check_file(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePermissions(f"{path} is not a regular file (a link?): remove it")
    if info.st_uid != os.getuid():
        raise UnsafePermissions(f"{path} belongs to another user: remove it")
    if info.st_mode & 0o077:
        raise UnsafePermissions(f"others can read or write {path}: run chmod 600 {path}")


def check_private(home: Path) -> None:
    """Refuse a store whose home or files someone else could read or change."""
    check_home(home)
    _check_file(db_path(home))
    for name in SIDE_FILES:
        _check_file(home / name)
