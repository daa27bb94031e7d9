"""Data sealed for a group: only members of its epoch can open it.

A sealed object is a stream of length-prefixed frames after a magic string:

    "covey-sealed/1\\n"
    frame(header)            signed envelope, type "seal"
    frame(chunk) ...         secretstream ciphertext, 64 KiB of plaintext each
    frame(trailer)           signed envelope, type "seal-end"

    frame(x) = len(x) as 4 bytes big-endian || x

The header names the group, the epoch, and carries a fresh per-object key
wrapped (XChaCha20-Poly1305) under a key derived from the epoch key, bound to
the group, the epoch and the author; plus the secretstream header and the
caller's associated data. The chunks are libsodium secretstream
(XChaCha20-Poly1305) with the FINAL tag on the last, so truncation,
reordering and swapped chunks fail. The trailer, signed by the same author,
carries the chunk count and a BLAKE2b digest of the header and every chunk:
any member could encrypt, so the signature over the digest is what makes
the author the author.

Both sides stream: memory stays at a few chunks whatever the size. `Opener`
hands out plaintext before the trailer is checked; the caller must hold it
back (the CLI writes to a temporary file and renames it only on success).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, Self

from covey.core import Rng, crypto, fields, wire
from covey.core.group import Group
from covey.errors import (
    DecryptionFailed,
    InvalidInput,
    KeyUnavailable,
    MalformedMessage,
    NeverAMember,
    NotSealedData,
    UnknownDevice,
)

MAGIC: Final = b"covey-sealed/1\n"
CHUNK_SIZE: Final = 64 * 1024
#: The largest frame: a full chunk and its secretstream overhead.
MAX_FRAME: Final = CHUNK_SIZE + crypto.STREAM_OVERHEAD
#: Header and trailer envelopes are small; so is associated data.
MAX_ENVELOPE: Final = 16 * 1024
MAX_ASSOCIATED: Final = 4096
LENGTH_BYTES: Final = 4
OBJECT_KEY_BYTES: Final = 32


@dataclass(frozen=True)
class SealHeader:
    TYPE: ClassVar[str] = "seal"
    group: bytes
    epoch: bytes
    wrapped_key: bytes
    stream_header: bytes
    associated: bytes

    def to_wire(self) -> Any:
        return {
            "g": self.group,
            "e": self.epoch,
            "k": self.wrapped_key,
            "s": self.stream_header,
            "ad": self.associated,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("g", "e", "k", "s", "ad"), what="seal header")
        return cls(
            fields.get_bytes(body, "g", size=32),
            fields.get_bytes(body, "e", size=32),
            fields.get_bytes(body, "k", size=24 + OBJECT_KEY_BYTES + 16),
            fields.get_bytes(body, "s", size=crypto.STREAM_HEADER_BYTES),
            fields.get_bytes(body, "ad", max_len=MAX_ASSOCIATED),
        )


@dataclass(frozen=True)
class SealTrailer:
    TYPE: ClassVar[str] = "seal-end"
    digest: bytes
    chunks: int

    def to_wire(self) -> Any:
        return {"d": self.digest, "n": self.chunks}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("d", "n"), what="seal trailer")
        return cls(
            fields.get_bytes(body, "d", size=32),
            fields.get_int(body, "n", min_value=1, max_value=1 << 48),
        )


class Digest(Protocol):
    """What the sealer and opener need of a hash: `crypto.stream_digest()` by default.

    The edges may pass a wrapper that hashes on another thread (see
    `covey.digests`); it must produce the very same digest.
    """

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(LENGTH_BYTES, "big") + data


def _wrap_context(group: bytes, epoch: bytes, author: bytes) -> bytes:
    return group + epoch + author


class Sealer:
    """Seal a stream for a group: `header`, then `update(data)`..., then `finish()`."""

    def __init__(
        self, group: Group, associated: bytes, rng: Rng, digest: Digest | None = None
    ) -> None:
        if len(associated) > MAX_ASSOCIATED:
            raise MalformedMessage(f"associated data is at most {MAX_ASSOCIATED} bytes")
        epoch, epoch_key = group.current_key()
        me = group.me
        author = me.device_id.raw
        self._seed = me.secrets.signing_seed
        self._author = author
        object_key = rng(OBJECT_KEY_BYTES)
        wrap_key = crypto.derive_key(epoch_key, crypto.HashDomain.SEAL_WRAP_KEY)
        context = _wrap_context(group.id, epoch, author)
        self._stream = crypto.StreamEncryptor(object_key)
        header = SealHeader(
            group.id,
            epoch,
            crypto.aead_seal(wrap_key, object_key, context, rng),
            self._stream.header,
            associated,
        )
        header_envelope = wire.seal_envelope(header, author, self._seed)
        self._digest: Digest = digest if digest is not None else crypto.stream_digest()
        self._digest.update(header_envelope)
        self._held = b""
        self._chunks = 0
        self._done = False
        #: The magic and the header frame: write these first.
        self.header = MAGIC + _frame(header_envelope)

    def _chunk(self, plain: bytes, final: bool, out: list[bytes]) -> None:
        ciphertext = self._stream.push(plain, final)
        length = len(ciphertext).to_bytes(LENGTH_BYTES, "big")
        self._digest.update(length)
        self._digest.update(ciphertext)
        self._chunks += 1
        out += (length, ciphertext)

    def update(self, data: bytes) -> list[bytes]:
        """Frames for the data so far, as pieces to write in order.

        The last chunk is held back for `finish`, which marks it final.
        """
        if self._done:
            raise ValueError("the stream is finished")
        out: list[bytes] = []
        if len(self._held) == CHUNK_SIZE and len(data) == CHUNK_SIZE and type(data) is bytes:
            self._chunk(self._held, False, out)
            self._held = data  # the usual case for a file read in chunks: no copy
            return out
        if not self._held and len(data) == CHUNK_SIZE and type(data) is bytes:
            self._held = data  # the usual case for a file read in chunks: no copy
            return out
        view = memoryview(data)
        while view:
            if len(self._held) == CHUNK_SIZE:  # more data follows it: not the last
                self._chunk(self._held, False, out)
                self._held = b""
            take = CHUNK_SIZE - len(self._held)
            self._held += view[:take]
            view = view[take:]
        return out

    def finish(self) -> list[bytes]:
        """The final chunk and the signed trailer, as pieces to write in order."""
        if self._done:
            raise ValueError("the stream is finished")
        self._done = True
        out: list[bytes] = []
        self._chunk(self._held, True, out)
        self._held = b""
        trailer = SealTrailer(self._digest.digest(), self._chunks)
        out.append(_frame(wire.seal_envelope(trailer, self._author, self._seed)))
        return out


@dataclass(frozen=True)
class Opened:
    """Who sealed an object, for which group and epoch, and its associated data."""

    group: bytes
    epoch: bytes
    author: bytes
    author_name: str
    associated: bytes
    #: Whether the author is a member now (data from a removed device still
    #: opens if it was a member of that epoch, but people should know).
    author_is_member: bool


def never_a_member(group: Group, author: bytes, name: str) -> str:
    """Why data sealed by `author` is refused: who added it, and what undid that."""
    state = group.log.state
    group_name = "the group" if state is None else repr(state.name)
    for intro in group.log.introductions.get(author, ()):
        reason = None if state is None else state.skipped.get(intro.id)
        adder = group.log.devices.get(intro.author)
        if reason is not None and adder is not None:
            return (
                f"sealed by {name!r}, which was never a member of {group_name}: its addition"
                f" by {adder.name!r} was undone ({reason})"
            )
    return f"sealed by {name!r}, which was never a member of {group_name}"


class Opener:
    """Open a sealed stream: `feed(data)` returns plaintext; `close()` checks the end.

    Plaintext comes out before the trailer's signature is checked: hold it
    back until `close()` returns.
    """

    def __init__(self, find_group: Callable[[bytes], Group], digest: Digest | None = None) -> None:
        self._find_group = find_group
        self._buffer = bytearray()
        self._offset = 0
        self._magic_seen = False
        self._group: Group | None = None
        self._stream: crypto.StreamDecryptor | None = None
        self._digest: Digest = digest if digest is not None else crypto.stream_digest()
        self._chunks = 0
        self._final = False
        self._trailer_seen = False
        self.opened: Opened | None = None
        self._signing_key = b""

    def next_size(self) -> int:
        """How many more bytes complete the next piece (0 once the object is complete).

        A reader that feeds exactly this many bytes at a time lets each chunk
        go to decryption without being copied through a buffer.
        """
        if not self._magic_seen:
            return len(MAGIC) - len(self._buffer)
        if self._trailer_seen:
            return 0
        if len(self._buffer) < LENGTH_BYTES:
            return LENGTH_BYTES - len(self._buffer)
        length = int.from_bytes(self._buffer[:LENGTH_BYTES], "big")
        return LENGTH_BYTES + length - len(self._buffer)

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the sealed object; return the plaintext they finish."""
        if self._magic_seen and len(self._buffer) == LENGTH_BYTES and len(data) == self.next_size():
            # The usual case for a reader that follows next_size(): exactly one
            # frame, whose length we hold. No copy.
            self._check_length(int.from_bytes(self._buffer, "big"))
            self._buffer.clear()
            return self._handle(bytes(data))
        self._buffer += data
        out = []
        if not self._magic_seen:
            if len(self._buffer) < len(MAGIC):
                if not MAGIC.startswith(bytes(self._buffer)):
                    raise NotSealedData()
                return b""
            if bytes(self._buffer[: len(MAGIC)]) != MAGIC:
                raise NotSealedData()
            self._offset = len(MAGIC)
            self._magic_seen = True
        while True:
            frame = self._next_frame()
            if frame is None:
                break
            out.append(self._handle(frame))
        del self._buffer[: self._offset]  # once per feed, not once per frame
        self._offset = 0
        return b"".join(out)

    def _check_length(self, length: int) -> None:
        in_chunks = self.opened is not None and not self._final
        if length > (MAX_FRAME if in_chunks else MAX_ENVELOPE):
            raise NotSealedData("a frame of the sealed data is too large")

    def _next_frame(self) -> bytes | None:
        start = self._offset + LENGTH_BYTES
        if len(self._buffer) < start:
            return None
        length = int.from_bytes(self._buffer[self._offset : start], "big")
        self._check_length(length)
        if len(self._buffer) < start + length:
            return None
        with memoryview(self._buffer) as view:
            frame = bytes(view[start : start + length])
        self._offset = start + length
        return frame

    def _handle(self, frame: bytes) -> bytes:
        if self.opened is None:
            self._open_header(frame)
            return b""
        if self._trailer_seen:
            raise NotSealedData("data follows the end of the sealed object")
        if self._final:
            self._check_trailer(frame)
            return b""
        assert self._stream is not None
        self._digest.update(len(frame).to_bytes(LENGTH_BYTES, "big"))
        self._digest.update(frame)
        self._chunks += 1
        try:
            plain, self._final = self._stream.pull(frame)
        except DecryptionFailed as exc:
            raise DecryptionFailed("the sealed data was altered, reordered or cut") from exc
        return plain

    def _open_header(self, frame: bytes) -> None:
        unverified = wire.parse_envelope(frame)
        if unverified.type != SealHeader.TYPE:
            raise NotSealedData()
        header = SealHeader.from_wire(unverified.body)
        group = self._find_group(header.group)
        record = group.log.devices.get(unverified.author)
        if record is None:
            raise UnknownDevice("the author of the sealed data was never in that group")
        wire.verify_envelope(unverified, {SealHeader.TYPE: SealHeader}, record.signing_key)
        state = group.log.state
        if state is None or unverified.author not in state.devices:
            # Added by a valid op that the merge undid (a concurrent removal of
            # its adder vetoed it): it holds that op's key, but was never a
            # member, and what it seals is not the group's (issue 9, 5g).
            raise NeverAMember(never_a_member(group, unverified.author, record.name))
        epoch_op = group.log.ops.get(header.epoch)
        rotation = None if epoch_op is None else getattr(epoch_op.body, "rotation", None)
        if rotation is None or group.log.validity.get(header.epoch) is not None:
            raise KeyUnavailable("the data was sealed under an epoch this device does not know")
        if unverified.author not in rotation.recipients:
            raise InvalidInput("the author was not a member of the epoch it sealed under")
        epoch_key = group.keys.get(header.epoch)
        if epoch_key is None:
            raise KeyUnavailable()
        wrap_key = crypto.derive_key(epoch_key, crypto.HashDomain.SEAL_WRAP_KEY)
        context = _wrap_context(header.group, header.epoch, unverified.author)
        object_key = crypto.aead_open(wrap_key, header.wrapped_key, context)
        self._stream = crypto.StreamDecryptor(object_key, header.stream_header)
        self._digest.update(frame)
        self._signing_key = record.signing_key
        self._group = group
        self.opened = Opened(
            header.group,
            header.epoch,
            unverified.author,
            record.name,
            header.associated,
            unverified.author in (group.log.state.members if group.log.state else {}),
        )

    def _check_trailer(self, frame: bytes) -> None:
        assert self.opened is not None
        unverified = wire.parse_envelope(frame)
        if unverified.type != SealTrailer.TYPE or unverified.author != self.opened.author:
            raise NotSealedData("the end of the sealed data is not its author's")
        trailer = wire.verify_envelope(
            unverified, {SealTrailer.TYPE: SealTrailer}, self._signing_key
        ).body
        if trailer.chunks != self._chunks or not crypto.equal(
            trailer.digest, self._digest.digest()
        ):
            raise DecryptionFailed("the sealed data does not match its author's signature")
        self._trailer_seen = True

    def close(self) -> Opened:
        """Check the object was complete and signed; return who sealed it."""
        if self.opened is None or not self._final or not self._trailer_seen or self._buffer:
            raise DecryptionFailed("the sealed data is incomplete")
        return self.opened


#: Bytes at the start of a sealed object that always hold its header frame.
HEAD_BYTES: Final = len(MAGIC) + LENGTH_BYTES + MAX_ENVELOPE


def sealed_group_id(head: bytes) -> bytes:
    """The group a sealed object names, from its first `HEAD_BYTES` bytes.

    Only a hint for finding the group: `Opener` checks everything again.
    """
    return sealed_header(head).group


def sealed_header(head: bytes) -> SealHeader:
    """A sealed object's header (its group and epoch), from its first
    `HEAD_BYTES` bytes, its signature NOT checked: a hint, as above."""
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + LENGTH_BYTES:
        raise NotSealedData()
    start = len(MAGIC) + LENGTH_BYTES
    length = int.from_bytes(head[len(MAGIC) : start], "big")
    if length > MAX_ENVELOPE or len(head) < start + length:
        raise NotSealedData()
    unverified = wire.parse_envelope(head[start : start + length])
    if unverified.type != SealHeader.TYPE:
        raise NotSealedData()
    return SealHeader.from_wire(unverified.body)


def seal_bytes(group: Group, plaintext: bytes, associated: bytes, rng: Rng) -> bytes:
    """Seal a whole byte string (see `Sealer` for streams)."""
    sealer = Sealer(group, associated, rng)
    return b"".join([sealer.header, *sealer.update(plaintext), *sealer.finish()])


def open_bytes(find_group: Callable[[bytes], Group], data: bytes) -> tuple[bytes, Opened]:
    """Open a whole sealed byte string: (plaintext, who sealed it)."""
    opener = Opener(find_group)
    plain = opener.feed(data)
    return plain, opener.close()
