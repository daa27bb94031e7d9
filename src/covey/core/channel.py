"""Secure channels between devices, over any byte stream (sans-I/O).

A channel is a Noise_XX handshake (prologue `covey/v1/channel`, each side's
static key being its device's channel key) followed by each side sending its
signed device record as the first transport message. A record is accepted
only if it verifies and names the very static key the handshake
authenticated; then the caller decides whether it knows that device.

Application messages (sync messages, up to `MAX_MESSAGE` bytes) travel as
one or more Noise transport messages: each plaintext starts with one byte,
1 if more fragments of the same message follow, else 0.

On the wire every Noise message is preceded by its length as two bytes,
big-endian (the Noise specification's suggestion); `frame` and `Deframer`
do that part.
"""

from __future__ import annotations

from typing import Final

from covey.core import noise
from covey.core.identity import DeviceRecord, open_device_record
from covey.errors import HandshakeFailed, InvalidInput, MalformedMessage, OversizeMessage

PROLOGUE: Final = b"covey/v1/channel"
#: The largest application message: a sync message's limit.
MAX_MESSAGE: Final = 4 << 20
#: Plaintext per Noise transport message: 65,535 less the tag and the flag byte.
FRAGMENT: Final = noise.MAX_MESSAGE - 16 - 1
LENGTH_BYTES: Final = 2
#: Fragments of one message, at most: what MAX_MESSAGE needs, and no more.
MAX_FRAGMENTS: Final = -(-MAX_MESSAGE // FRAGMENT)
#: The first bytes a dialing device sends, before any Noise message: which
#: protocol follows. A channel (Noise_XX, then sync), or pairing
#: (Noise_XXpsk3) followed by the 8-byte tag of the invitation it answers
#: (the tag is in the inviter's advert already, so it tells nobody anything
#: new), so one listening port serves both and several open invitations.
CHANNEL_PREAMBLE: Final = b"cv1c"
PAIR_PREAMBLE: Final = b"cv1p"
PREAMBLE_BYTES: Final = 4
PAIR_TAG_BYTES: Final = 8
MORE: Final = b"\x01"
LAST: Final = b"\x00"


def frame(noise_message: bytes) -> bytes:
    """A Noise message with its two-byte length in front."""
    return len(noise_message).to_bytes(LENGTH_BYTES, "big") + noise_message


class Deframer:
    """Splits a byte stream into Noise messages; holds at most one partial message."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= LENGTH_BYTES:
            length = int.from_bytes(self._buffer[:LENGTH_BYTES], "big")
            if len(self._buffer) < LENGTH_BYTES + length:
                break
            messages.append(bytes(self._buffer[LENGTH_BYTES : LENGTH_BYTES + length]))
            del self._buffer[: LENGTH_BYTES + length]
        return messages


def fragments(transport: noise.Transport, message: bytes) -> list[bytes]:
    """`message` as framed Noise transport messages."""
    if len(message) > MAX_MESSAGE:
        raise OversizeMessage(f"a channel message is at most {MAX_MESSAGE} bytes")
    pieces = [message[i : i + FRAGMENT] for i in range(0, len(message), FRAGMENT)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        flag = MORE if index < len(pieces) - 1 else LAST
        out.append(frame(transport.encrypt(flag + piece)))
    return out


class Reassembler:
    """Puts fragments back together; refuses a message over `MAX_MESSAGE`."""

    def __init__(self, transport: noise.Transport) -> None:
        self._transport = transport
        self._parts: list[bytes] = []
        self._size = 0

    def push(self, noise_message: bytes) -> bytes | None:
        """The whole message once its last fragment arrives, else None."""
        plain = self._transport.decrypt(noise_message)
        if not plain or plain[:1] not in (MORE, LAST):
            raise MalformedMessage("a channel fragment has no valid flag")
        if plain[:1] == MORE and len(plain) == 1:
            raise MalformedMessage("a channel fragment that is not the last may not be empty")
        if len(self._parts) >= MAX_FRAGMENTS:
            raise OversizeMessage("a channel message has too many fragments")
        self._size += len(plain) - 1
        if self._size > MAX_MESSAGE:
            raise OversizeMessage(f"a channel message is at most {MAX_MESSAGE} bytes")
        self._parts.append(plain[1:])
        if plain[:1] == MORE:
            return None
        message = b"".join(self._parts)
        self._parts, self._size = [], 0
        return message


def check_peer_record(record_bytes: bytes, remote_static: bytes | None) -> DeviceRecord:
    """The peer's device record, if it verifies and names the key the handshake proved."""
    try:
        record = open_device_record(record_bytes).body
    except InvalidInput as exc:
        raise HandshakeFailed("the peer's device record does not verify") from exc
    if remote_static is None or record.channel_key != remote_static:
        raise HandshakeFailed("the peer's device record is not for the key it proved")
    return record
