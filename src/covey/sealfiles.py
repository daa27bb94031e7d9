"""Sealing and opening files: the I/O edge around `covey.core.seal`.

Files are read and written in 64 KiB pieces, so memory stays flat whatever
their size, and the stream digest is computed on a second thread
(`covey.digests`) while the main thread encrypts or decrypts. Output goes to
a temporary file beside the destination (mode 0600), which is renamed into
place only once the whole input has been checked (for `open_file`: the
author's signature over every chunk); on any error the temporary file is
removed and nothing appears at the destination.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

from covey.core import Rng
from covey.core.group import Group
from covey.core.seal import Opened, Opener, Sealer
from covey.digests import BackgroundDigest
from covey.errors import InvalidArgument, NotSealedData

BLOCK: Final = 64 * 1024


@contextlib.contextmanager
def atomic_output(destination: Path, overwrite: bool) -> Iterator[BinaryIO]:
    """A file that appears at `destination` (mode 0600) only if the block ends cleanly.

    Without `overwrite`, nothing at `destination` is ever replaced: not a
    file that appeared while the block ran (a long download), not a
    dangling symlink (the new file is linked into place, which fails if
    anything is there, rather than renamed over it).
    """
    if os.path.lexists(destination) and not overwrite:
        raise _exists(destination)
    directory = destination.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=".covey-", dir=directory)
    except OSError as exc:
        raise InvalidArgument(f"cannot write {destination}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise InvalidArgument(f"cannot write {destination}: {exc.strerror}") from exc
        try:
            if overwrite:
                os.replace(temporary, destination)
            else:
                _place_new(temporary, destination)
        except OSError as exc:
            raise InvalidArgument(f"cannot write {destination}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _exists(destination: Path) -> InvalidArgument:
    return InvalidArgument(f"{destination} exists (use --force to overwrite it)")


def _place_new(temporary: str, destination: Path) -> None:
    """Move `temporary` to `destination` only if nothing is there (atomically)."""
    try:
        os.link(temporary, destination)
    except FileExistsError:
        raise _exists(destination) from None
    except OSError:  # (a file system without hard links: check, then rename)
        if os.path.lexists(destination):
            raise _exists(destination) from None
        os.replace(temporary, destination)
        return
    os.unlink(temporary)


def _blocks(source: BinaryIO) -> Iterator[bytes]:
    while block := source.read(BLOCK):
        yield block


def open_input(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc


def seal_file(
    group: Group, source: Path, destination: Path, associated: bytes, rng: Rng, overwrite: bool
) -> None:
    """Seal `source` for `group` into `destination`."""
    digest = BackgroundDigest()
    try:
        with open_input(source) as reader, atomic_output(destination, overwrite) as out:
            sealer = Sealer(group, associated, rng, digest)
            out.write(sealer.header)
            for block in _blocks(reader):
                out.writelines(sealer.update(block))
            out.writelines(sealer.finish())
    finally:
        digest.close()


#: `-o -`: write to standard output (after the whole file checked).
STDOUT: Final = Path("-")


@contextlib.contextmanager
def _checked_stdout() -> Iterator[BinaryIO]:
    """Standard output, written only once the block ends cleanly: until then the
    bytes wait in an unnamed temporary file (owner-only, gone when closed), so
    a reader of the pipe never sees a byte that did not check."""
    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.seek(0)
        out = sys.stdout.buffer
        while block := spool.read(BLOCK):
            out.write(block)
        out.flush()


def open_file(
    find_group: Callable[[bytes], Group], source: Path, destination: Path, overwrite: bool
) -> Opened:
    """Open sealed `source` into `destination` (or standard output: `STDOUT`);
    nothing is written unless it all checks."""
    digest = BackgroundDigest()
    output = _checked_stdout() if destination == STDOUT else atomic_output(destination, overwrite)
    try:
        with open_input(source) as reader, output as out:
            opener = Opener(find_group, digest)
            while wanted := opener.next_size():
                data = reader.read(min(wanted, BLOCK + 64))
                if not data:
                    break  # truncated: close() says so
                out.write(opener.feed(data))
            if reader.read(1):
                raise NotSealedData("data follows the end of the sealed object")
            return opener.close()
    finally:
        digest.close()
