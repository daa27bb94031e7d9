"""Sealed files through a relay: what `covey put` stores and `covey get` reads (PROTOCOL.md 18.7).

A sealed file (section 9) names its group, its epoch and its author in its
clear header, so it does not go onto a relay as it is. It is cut into
*pieces* of at most `PIECE` bytes; each is encrypted (XChaCha20-Poly1305)
under a *blob key*, derived from the key of the epoch the file was sealed
under and a fresh random nonce, bound to its place (its index and the
number of pieces: a relay cannot reorder, swap or drop one unseen), padded
to the relay's item sizes, and put as one blob. Then a *head* blob,
encrypted the same way at index 0, lists the pieces' IDs, the file's length
and its name. The reference (`BlobRef`, `covey:blob:...`) names the relay,
the head's ID and the nonce, nothing else: whoever has it and holds the
epoch's key gets the sealed file (and so could open it anyway); the relay
sees only padded sizes, and a reference alone opens nothing.

Everything here is pure (keys and bytes in, requests' fields and bytes
out); `covey.relayfiles` drives it over a relay connection.
"""

from __future__ import annotations

import base64
import binascii
import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from covey.core import Rng, crypto, encoding, fields, relayitems
from covey.core.seal import HEAD_BYTES, sealed_header
from covey.errors import (
    BadBlob,
    DecryptionFailed,
    InvalidArgument,
    InvalidInput,
    MalformedMessage,
)

#: Bytes of a sealed file one blob carries (the largest item, less the
#: encryption and the length that the padding keeps).
PIECE: Final = relayitems.ITEM_SIZES[-1] - crypto.AEAD_OVERHEAD - relayitems.LENGTH_BYTES
#: Pieces one file is cut into at most: 60 x 4 MiB stays under the 256 MiB
#: a relay keeps for one epoch's segment (PROTOCOL.md 18.4), which blobs
#: share with the group's mirror.
MAX_PIECES: Final = 60
MAX_SIZE: Final = MAX_PIECES * PIECE
NONCE_BYTES: Final = 16
ID_BYTES: Final = 32
#: A file name as the head keeps it (UTF-8 bytes).
MAX_NAME: Final = 255
#: The largest head blob (60 IDs and a 255-byte name fit in 4 KiB): a
#: larger answer to a head's ID is refused before any key is tried.
MAX_HEAD_BLOB: Final = relayitems.ITEM_SIZES[1]
#: What a shared file's name ends with: `covey get` writes only sealed files.
SUFFIX: Final = ".covey"
REF_PREFIX: Final = "covey:blob:"
REF_VERSION: Final = 1
_REF_BYTES: Final = 1 + 32 + ID_BYTES + NONCE_BYTES

HEAD_LIMITS: Final = encoding.Limits(
    total=relayitems.ITEM_SIZES[-1],
    bin_len=ID_BYTES,
    str_len=4 * MAX_NAME,
    array_len=MAX_PIECES,
    map_len=3,
    depth=3,
    objects=MAX_PIECES + 8,
)


@dataclass(frozen=True)
class BlobRef:
    """Where a sealed file put on a relay is, and the nonce its key needs."""

    relay: bytes
    head: bytes
    nonce: bytes

    def __str__(self) -> str:
        raw = bytes([REF_VERSION]) + self.relay + self.head + self.nonce
        return REF_PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    @classmethod
    def parse(cls, text: str) -> BlobRef:
        """Read a reference a person gave; InvalidArgument saying what is wrong."""
        text = text.strip()
        if not text.startswith(REF_PREFIX):
            raise InvalidArgument(
                f"a file reference starts with {REF_PREFIX} (covey put prints it)"
            )
        body = text[len(REF_PREFIX) :].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != _REF_BYTES:
            raise InvalidArgument("that file reference is cut short or mistyped: copy it again")
        if raw[0] != REF_VERSION:
            raise InvalidArgument("that file reference is from a newer covey: upgrade covey")
        return cls(raw[1:33], raw[33 : 33 + ID_BYTES], raw[33 + ID_BYTES :])


def blob_key(epoch_key: bytes, nonce: bytes) -> bytes:
    """The key of one put's pieces and head, from the epoch the file was sealed under."""
    return crypto.derive_key(epoch_key, crypto.HashDomain.RELAY_BLOB_KEY, nonce)


def _associated(index: int, count: int) -> bytes:
    """A piece's place (index 1..count), or the head's (0, 0)."""
    return index.to_bytes(4, "big") + count.to_bytes(4, "big")


def _seal(key: bytes, index: int, count: int, data: bytes, rng: Rng) -> bytes:
    padded = relayitems.pad(data, crypto.AEAD_OVERHEAD)
    return crypto.aead_seal(key, padded, _associated(index, count), rng)


def _open(key: bytes, index: int, count: int, blob: Any) -> bytes:
    if type(blob) is not bytes or len(blob) not in relayitems.ITEM_SIZES:
        raise MalformedMessage("a blob has one of the relay's padded sizes")
    return relayitems.unpad(crypto.aead_open(key, blob, _associated(index, count)))


def piece_count(size: int) -> int:
    """How many pieces a file of `size` bytes is cut into (1 at least)."""
    return max(1, math.ceil(size / PIECE))


def check_name(name: str) -> str:
    """A file name a head may carry: one path component, printable, not hidden,
    ending in `.covey`, in Unicode normal form C.

    The name comes from another device: `covey get` writes to it by default,
    so anything that could leave the current directory, or pass for another
    kind of file (a `Makefile`), is refused.
    """
    if (
        not name.endswith(SUFFIX)
        or len(name) == len(SUFFIX)
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME
        or name.startswith(".")
        or any(c in name for c in "/\\\x00")
        or not name.isprintable()
        or unicodedata.normalize("NFC", name) != name
    ):
        raise MalformedMessage("a shared file's name is one plain file name ending in .covey")
    return name


def name_for(filename: str) -> str:
    """The name a put gives a file: its own, in normal form C, without leading
    dots, ending in `.covey` (InvalidArgument if nothing usable is left)."""
    name = unicodedata.normalize("NFC", filename).lstrip(".")
    if not name.endswith(SUFFIX):
        name += SUFFIX
    try:
        return check_name(name)
    except MalformedMessage:
        raise InvalidArgument(
            "that file's name cannot be shared (a plain name of at most 255 bytes):"
            " rename it, and put it again"
        ) from None


@dataclass(frozen=True)
class Head:
    """What a head blob says: the file's name and length, its pieces in order."""

    name: str
    size: int
    pieces: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return encoding.encode(
            {"n": self.name, "p": list(self.pieces), "s": self.size}, HEAD_LIMITS
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Head:
        body = fields.as_map(encoding.decode(data, HEAD_LIMITS), ("n", "p", "s"), what="blob head")
        size = fields.get_int(body, "s", min_value=1, max_value=MAX_SIZE)
        pieces = body["p"]
        if type(pieces) is not list or len(pieces) != piece_count(size):
            raise MalformedMessage("a blob head lists one piece per 4 MiB of the file")
        for piece in pieces:
            if type(piece) is not bytes or len(piece) != ID_BYTES:
                raise MalformedMessage("a blob head lists 32-byte blob IDs")
        return cls(check_name(fields.get_str(body, "n", max_len=4 * MAX_NAME)), size, tuple(pieces))


class Upload:
    """One sealed file going up to one relay: each request's fields, in order.

    The caller puts `piece(data)` for each `PIECE` bytes of the file in
    order (the last may be shorter), tells `stored(id)` each answer, then
    puts `head()` and makes the reference with `ref(id)`.
    """

    def __init__(
        self,
        epoch_key: bytes,
        relay_key: bytes,
        size: int,
        name: str,
        ttl: int,
        rng: Rng,
        *,
        quota_key: bytes | None = None,
    ) -> None:
        """`epoch_key`: the key of the epoch the file was sealed under (the blob
        key comes from it); `quota_key`: the key of the epoch whose segment the
        blobs count against (the putter's current one: a removed device that
        holds an old epoch can fill that epoch's segment, not the current)."""
        if size > MAX_SIZE:
            raise InvalidArgument(
                f"covey put takes sealed files of at most {MAX_SIZE >> 20} MiB"
                " (a relay keeps 256 MiB per group key)"
            )
        self.relay_key = relay_key
        self.size = size
        self.name = check_name(name)
        self.count = piece_count(size)
        self.nonce = rng(NONCE_BYTES)
        self._key = blob_key(epoch_key, self.nonce)
        self._token = relayitems.segment_token(quota_key or epoch_key, relay_key)
        self._ttl = ttl
        self._rng = rng
        self._ids: list[bytes] = []
        self._sent = 0

    def piece(self, data: bytes) -> dict[str, Any]:
        """The fields of the `blob-put` for the next piece."""
        index = self._sent + 1
        last = index == self.count
        want = self.size - PIECE * (self.count - 1) if last else PIECE
        if index > self.count or len(data) != want or len(self._ids) != self._sent:
            raise ValueError("pieces go up in order, each of PIECE bytes but the last")
        self._sent += 1
        return self._fields(_seal(self._key, index, self.count, data, self._rng))

    def stored(self, blob_id: Any) -> None:
        """The relay's answer to the last piece's put: its ID (a relay may lie)."""
        if type(blob_id) is not bytes or len(blob_id) != ID_BYTES:
            raise MalformedMessage("a relay answers a blob put with a 32-byte ID")
        if len(self._ids) >= self._sent:
            raise ValueError("no piece is waiting for its ID")
        self._ids.append(blob_id)

    def head(self) -> dict[str, Any]:
        """The fields of the head's `blob-put`, once every piece is stored."""
        if len(self._ids) != self.count:
            raise ValueError("the head goes up after every piece")
        head = Head(self.name, self.size, tuple(self._ids))
        data = head.to_bytes()
        Head.from_bytes(data)  # (what a getter will read: refused here, not there)
        return self._fields(_seal(self._key, 0, 0, data, self._rng))

    def ref(self, head_id: Any) -> BlobRef:
        if type(head_id) is not bytes or len(head_id) != ID_BYTES:
            raise MalformedMessage("a relay answers a blob put with a 32-byte ID")
        return BlobRef(self.relay_key, head_id, self.nonce)

    def _fields(self, blob: bytes) -> dict[str, Any]:
        return {"token": self._token, "blob": blob, "ttl": self._ttl}


@dataclass(frozen=True)
class Held:
    """An epoch key a getter holds, and the group and epoch it is of."""

    group: bytes
    epoch: bytes
    key: bytes


class Download:
    """One sealed file coming down: its head opened, then each piece in order.

    The first piece must begin with a sealed file's header naming the group
    and epoch whose key opened the head: what is written is a sealed file of
    that group, which `covey open` then checks in full (its author, its
    signature), never other bytes under a name someone chose.
    """

    def __init__(self, head: Head, key: bytes, held: Held) -> None:
        self.head = head
        self.held = held
        self._key = key
        self._next = 1

    @classmethod
    def open_head(cls, ref: BlobRef, held: Iterable[Held], blob: Any) -> Download:
        """The head `blob` opened under the one epoch key (of those held) it was put with.

        BadBlob when none opens it: this device does not hold the epoch it
        was sealed under, or the relay returned something else.
        """
        if type(blob) is not bytes or len(blob) > MAX_HEAD_BLOB:
            raise BadBlob("the relay returned something that is not a shared file")
        for each in held:
            key = blob_key(each.key, ref.nonce)
            try:
                plain = _open(key, 0, 0, blob)
            except DecryptionFailed:
                continue
            except MalformedMessage as exc:
                raise BadBlob("the relay returned something that is not a shared file") from exc
            try:
                return cls(Head.from_bytes(plain), key, each)
            except MalformedMessage as exc:
                raise BadBlob(f"the shared file's description is damaged: {exc}") from exc
        raise BadBlob(
            "this device holds no key that opens that file (it was shared in a group, or at a"
            " time, this device is not a member of), or the relay altered it"
        )

    @property
    def pieces_left(self) -> list[bytes]:
        return list(self.head.pieces[self._next - 1 :])

    def piece(self, blob: Any) -> bytes:
        """The next piece's bytes, from the relay's answer to its `blob-get`."""
        head = self.head
        index = self._next
        if index > len(head.pieces):
            raise ValueError("every piece is in")
        try:
            data = _open(self._key, index, len(head.pieces), blob)
        except (DecryptionFailed, MalformedMessage) as exc:
            raise BadBlob(f"the relay returned piece {index} damaged or swapped") from exc
        last = index == len(head.pieces)
        want = head.size - PIECE * (len(head.pieces) - 1) if last else PIECE
        if len(data) != want:
            raise BadBlob(f"piece {index} of the shared file has the wrong length")
        if index == 1:
            self._check_sealed(data[:HEAD_BYTES])
        self._next += 1
        return data

    def _check_sealed(self, start: bytes) -> None:
        try:
            header = sealed_header(start)
        except InvalidInput as exc:
            raise BadBlob("what was shared is not a sealed file: it was not written") from exc
        if header.group != self.held.group or header.epoch != self.held.epoch:
            raise BadBlob(
                "what was shared is sealed for another group or key than it was shared"
                " under: it was not written"
            )
