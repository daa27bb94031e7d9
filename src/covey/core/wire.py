"""Signed envelopes: the one shape of every message a device signs.

    envelope = [signed: bin, signature: bin(64)]
    signed   = [version: int, type: str, author: bin(32), body: value]
    signature = Ed25519(author's key, "covey/v1/envelope" || 0x00 || signed)

Both layers are canonical msgpack (`encoding`). The signature covers the exact
`signed` bytes as received; the body is decoded from those bytes, never
re-encoded before checking. Because the outer array is canonical too, a valid
envelope has exactly one byte string: any change to it, down to one bit, is
refused.

Decoding checks, in order: size and canonical form of both layers; version
(UnsupportedVersion); type, against the types the caller accepts in this
context (UnknownMessageType); the author's key (UnknownDevice); the signature
(BadSignature); then the body's own schema (MalformedMessage).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, Protocol, Self, TypeVar

from covey.core import crypto, encoding
from covey.core.encoding import DEFAULT_LIMITS, Limits
from covey.errors import (
    MalformedMessage,
    OversizeMessage,
    UnknownDevice,
    UnknownMessageType,
    UnsupportedVersion,
)

#: The wire version this covey writes and the only one it reads.
VERSION: Final = 1
#: Device IDs are BLAKE2b-256 of the device's signing key.
AUTHOR_BYTES: Final = 32
#: Message type names: short ASCII words.
MAX_TYPE_LEN: Final = 32


class Body(Protocol):
    """A message body: a frozen value that converts to and from a covey value."""

    TYPE: ClassVar[str]

    def to_wire(self) -> Any: ...

    @classmethod
    def from_wire(cls, value: Any) -> Self: ...


B = TypeVar("B", bound=Body)

#: Looks up a device's Ed25519 public key by device ID; None if unknown.
KeyLookup = Callable[[bytes], bytes | None]


@dataclass(frozen=True, slots=True)
class Envelope(Generic[B]):
    """A verified envelope: its body, its author, and the exact bytes it came in."""

    type: str
    author: bytes
    body: B
    #: The `signed` bytes, exactly as received (what the signature covers).
    signed: bytes
    signature: bytes
    #: The whole envelope, exactly as received.
    raw: bytes


def seal_envelope(body: Body, author: bytes, seed: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Sign `body` as `author` (a device ID) with the Ed25519 `seed`; return the envelope."""
    signed = encoding.encode([VERSION, body.TYPE, author, body.to_wire()], limits)
    signature = crypto.sign(seed, crypto.SignDomain.ENVELOPE, signed)
    return encoding.encode([signed, signature], limits)


@dataclass(frozen=True, slots=True)
class Unverified:
    """An envelope whose structure is valid but whose signature is not yet checked."""

    version: int
    type: str
    author: bytes
    body: Any
    signed: bytes
    signature: bytes
    raw: bytes


#: The canonical tail of an envelope: bin8 header for 64 bytes, then the signature.
_SIGNATURE_HEADER: Final = b"\xc4\x40"


def _split(data: bytes, limits: Limits) -> tuple[bytes, bytes]:
    """The two parts of an envelope, read by hand: [bin, bin(64)], canonical.

    The outer layer has one shape, so it is checked byte for byte rather
    than decoded: the shortest bin header for the signed part's length,
    then exactly `c4 40` and 64 bytes, and nothing after.
    """
    if not isinstance(data, bytes):
        raise MalformedMessage("message is not bytes")
    if len(data) > limits.total:
        raise OversizeMessage(f"message is larger than {limits.total} bytes")
    if len(data) < 4 or data[0] != 0x92:
        raise MalformedMessage("envelope must be a pair")
    kind = data[1]
    size_bytes = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(kind)
    if size_bytes is None:
        raise MalformedMessage("envelope fields must be bytes")
    start = 2 + size_bytes
    length = int.from_bytes(data[2:start], "big")
    shortest = 1 if length < 1 << 8 else 2 if length < 1 << 16 else 4
    if size_bytes != shortest:
        raise MalformedMessage("message is not in canonical form")
    end = start + length
    if (
        len(data) != end + len(_SIGNATURE_HEADER) + crypto.SIGNATURE_BYTES
        or data[end : end + len(_SIGNATURE_HEADER)] != _SIGNATURE_HEADER
    ):
        raise MalformedMessage("envelope must be [signed, 64-byte signature]")
    return data[start:end], data[end + len(_SIGNATURE_HEADER) :]


def parse_envelope(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Unverified:
    """Check the structure of an envelope, without verifying its signature."""
    type_, author, body, signed, signature = read_envelope(data, limits)
    return Unverified(VERSION, type_, author, body, signed, signature, bytes(data))


def read_envelope(
    data: bytes, limits: Limits = DEFAULT_LIMITS, *, walk_types: bool = True
) -> tuple[str, bytes, Any, bytes, bytes]:
    """(type, author, body, signed, signature) of an envelope, its signature unchecked.

    `walk_types=False`: the body's values are not type-checked here; the
    caller must read all of them against a closed schema
    (`encoding.decode`). The envelope's own fields are checked either way.
    """
    signed, signature = _split(data, limits)
    inner = encoding.decode(signed, limits, walk_types=walk_types)
    if type(inner) is not list or not inner:
        raise MalformedMessage("signed part must be a list")
    version = inner[0]
    if type(version) is not int:  # (a bool is not an integer here)
        raise MalformedMessage("version must be an integer")
    if version != VERSION:
        raise UnsupportedVersion(
            f"protocol version {version} is not supported (this covey speaks {VERSION})"
        )
    if len(inner) != 4:
        raise MalformedMessage("signed part must have four fields")
    _, type_, author, body = inner
    if type(type_) is not str or not 0 < len(type_) <= MAX_TYPE_LEN or not type_.isascii():
        raise MalformedMessage("message type must be a short ASCII name")
    if type(author) is not bytes or len(author) != AUTHOR_BYTES:
        raise MalformedMessage("author must be a 32-byte device ID")
    return type_, author, body, signed, signature


def verify_envelope(
    unverified: Unverified, accept: Mapping[str, type[B]], public_key: bytes | None
) -> Envelope[B]:
    """Verify an envelope's type, signature and body schema."""
    body_cls = accept.get(unverified.type)
    if body_cls is None:
        raise UnknownMessageType(f"message type {unverified.type!r} is not accepted here")
    if public_key is None:
        raise UnknownDevice()
    crypto.verify(public_key, crypto.SignDomain.ENVELOPE, unverified.signed, unverified.signature)
    body = body_cls.from_wire(unverified.body)
    return Envelope(
        unverified.type,
        unverified.author,
        body,
        unverified.signed,
        unverified.signature,
        unverified.raw,
    )


def open_envelope(
    data: bytes,
    accept: Mapping[str, type[B]],
    keys: KeyLookup,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope[B]:
    """Decode and verify an envelope signed by a known device.

    `accept` maps the message types acceptable in this context to their body
    classes; `keys` finds the author's Ed25519 public key by device ID.
    """
    unverified = parse_envelope(data, limits)
    if unverified.type not in accept:
        raise UnknownMessageType(f"message type {unverified.type!r} is not accepted here")
    return verify_envelope(unverified, accept, keys(unverified.author))
