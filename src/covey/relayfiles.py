"""`covey put` and `covey get`: sealed files through a group's relay, the I/O edge.

What is put and how (pieces, keys, the head, the reference) is decided in
`covey.core.blobs`; this module reads the file a piece at a time (memory
stays at one piece, 4 MiB), carries each request over a `RelayConnection`,
and writes what comes down to a temporary file that is renamed into place
only once every piece checked (`sealfiles.atomic_output`). Every wait on the
network is bounded (`CONNECT_TIMEOUT`, `CALL_TIMEOUT`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeVar

import anyio

from covey.core import Rng, blobs
from covey.core.group import Group
from covey.core.relaylink import RelayLink
from covey.core.seal import HEAD_BYTES, sealed_header
from covey.errors import (
    HandshakeFailed,
    InvalidArgument,
    InvalidInput,
    KeyUnavailable,
    NotSealedData,
    RelayNotAllowed,
    RelayNothingThere,
    RelaySegmentFull,
    RelayUnreachable,
)
from covey.net.relay import RelayConnection
from covey.runtime.driver import unreachable
from covey.sealfiles import atomic_output, open_input

T = TypeVar("T")

#: Seconds to reach a relay and see its proof.
CONNECT_TIMEOUT: Final = 15.0
#: Seconds one request may take (a 4 MiB piece on a slow uplink).
CALL_TIMEOUT: Final = 120.0


@dataclass(frozen=True)
class Put:
    """What `put_file` did: the reference, and the relay and group it used."""

    ref: blobs.BlobRef
    relay: RelayLink
    group: Group
    #: How long the relay keeps it, in seconds (asked, or the relay's default).
    ttl: int


def relays_of(group: Group) -> list[RelayLink]:
    """The group's relays (its signed state), in the order they are tried."""
    return [
        RelayLink(add.host, add.port, key, add.access) for key, add in group.state.relays.items()
    ]


def sealed_for(path: Path) -> tuple[bytes, bytes]:
    """(group ID, epoch ID) a sealed file names; NotSealedData if it is not one."""
    with open_input(path) as reader:
        head = reader.read(HEAD_BYTES)
    try:
        header = sealed_header(head)
    except InvalidInput as exc:
        raise NotSealedData(
            f"{path} is not a sealed file: seal it first (covey seal {path} -g GROUP)"
        ) from exc
    return header.group, header.epoch


async def put_file(
    group: Group, epoch: bytes, path: Path, ttl: int, rng: Rng, on_piece: Callable[[], None]
) -> Put:
    """Put sealed `path` at the first of the group's relays that takes it."""
    links = relays_of(group)
    if not links:
        raise InvalidArgument(
            f"{group.state.name!r} has no relay: an admin adds one with"
            f" covey relay add LINK -g {group.state.name}"
        )
    epoch_key = group.keys.get(epoch)
    if epoch_key is None:
        raise KeyUnavailable("this device does not hold the key that file was sealed under")
    # The blobs count against the current epoch's segment, which no device
    # removed since holds (current_key: NotAMember for a device removed).
    _, quota_key = group.current_key()
    name = blobs.name_for(path.name)

    async def put_at(conn: RelayConnection, link: RelayLink) -> Put:
        with open_input(path) as reader:
            before = os.fstat(reader.fileno())
            upload = blobs.Upload(
                epoch_key, link.key, before.st_size, name, ttl, rng, quota_key=quota_key
            )
            ref = await _upload(conn, upload, reader, on_piece)
            if _changed(before, os.fstat(reader.fileno())):
                raise InvalidArgument(f"{path} changed while it was being put: put it again")
        return Put(ref, link, group, ttl or conn.ready.limits.ttl_default)

    return await _at_first_reachable(links, rng, put_at)


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_ino, before.st_size, before.st_mtime_ns) != (
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
    )


async def _upload(
    conn: RelayConnection, upload: blobs.Upload, reader: BinaryIO, on_piece: Callable[[], None]
) -> blobs.BlobRef:
    try:
        for _ in range(upload.count):
            data = reader.read(blobs.PIECE)
            upload.stored(await _call(conn, "blob-put", **upload.piece(data)))
            on_piece()
        if reader.read(1):
            raise ValueError("the file grew")
        return upload.ref(await _call(conn, "blob-put", **upload.head()))
    except RelaySegmentFull:
        raise RelaySegmentFull(
            "the relay keeps no more for this group's current key: wait for files put"
            " earlier to expire, or start a new key (covey group rotate)"
        ) from None
    except ValueError as exc:  # (a piece of the wrong length: the file changed)
        raise InvalidArgument("the file changed while it was being put: put it again") from exc


async def get_file(
    groups: Iterable[Group],
    ref: blobs.BlobRef,
    output: Path | None,
    overwrite: bool,
    rng: Rng,
    on_piece: Callable[[int, int], None],
) -> tuple[Path, blobs.Head]:
    """Get the sealed file `ref` names into `output` (default: its name, here)."""
    held = [g for g in groups if ref.relay in g.state.relays]
    if not held:
        raise InvalidArgument(
            "that file was put on a relay none of this device's groups uses: this device"
            " cannot reach it (are you in the group it was shared with?)"
        )
    keys = [blobs.Held(g.id, epoch, key) for g in held for epoch, key in g.keys.items()]
    links = list(
        dict.fromkeys(link for g in held for link in relays_of(g) if link.key == ref.relay)
    )

    async def get_at(conn: RelayConnection, link: RelayLink) -> tuple[Path, blobs.Head]:
        return await _download(conn, ref, keys, output, overwrite, on_piece)

    return await _at_first_reachable(links, rng, get_at)


async def _at_first_reachable(
    links: list[RelayLink], rng: Rng, use: Callable[[RelayConnection, RelayLink], Awaitable[T]]
) -> T:
    """`use` a connection to the first of `links` that answers (RelayUnreachable,
    saying why for each, if none does)."""
    reasons = []
    for link in links:
        try:
            conn = await _connect(link, rng)
        except RelayUnreachable as exc:
            reasons.append(str(exc))
            continue
        try:
            return await use(conn, link)
        finally:
            await conn.aclose()
    raise RelayUnreachable("; ".join(reasons))


async def _download(
    conn: RelayConnection,
    ref: blobs.BlobRef,
    keys: list[blobs.Held],
    output: Path | None,
    overwrite: bool,
    on_piece: Callable[[int, int], None],
) -> tuple[Path, blobs.Head]:
    try:
        head_blob = await _call(conn, "blob-get", id=ref.head)
        download = blobs.Download.open_head(ref, keys, head_blob)
        head = download.head
        destination = output or Path(head.name)
        with atomic_output(destination, overwrite) as out:
            for n, blob_id in enumerate(download.pieces_left, 1):
                out.write(download.piece(await _call(conn, "blob-get", id=blob_id)))
                on_piece(n, len(head.pieces))
    except RelayNothingThere:
        raise RelayNothingThere(
            "the relay no longer holds that file (it expired, or the reference is from"
            " another relay): ask for it to be put again"
        ) from None
    return destination, head


async def _connect(link: RelayLink, rng: Rng) -> RelayConnection:
    try:
        with anyio.fail_after(CONNECT_TIMEOUT):
            return await RelayConnection.open(link, rng)
    except (OSError, TimeoutError) as exc:
        raise RelayUnreachable(unreachable(link.host, link.port, exc)) from exc
    except HandshakeFailed as exc:
        raise RelayUnreachable(f"{link.host}:{link.port} did not prove it is the relay") from exc
    except RelayNotAllowed as exc:
        raise RelayUnreachable(
            f"{link.host}:{link.port} refused the group's access secret"
        ) from exc


async def _call(conn: RelayConnection, op: str, **values: Any) -> Any:
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            return await conn.call(op, **values)
    except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise RelayUnreachable("the relay stopped answering: try again") from exc
