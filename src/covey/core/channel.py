"""Secure channels between devices, over any byte stream (sans-I/O).

A channel is a Noise_NN handshake (prologue `covey/v1/channel`: no static
keys, so the handshake shows nobody who either side is), then each side
proves which device it is inside the encrypted channel with a `proof`: its
device ID and an Ed25519 signature over the handshake hash, under a domain
string of its role (`covey/v1/chan-initiator`, `covey/v1/chan-responder`).
The initiator speaks first and seals its proof to the channel key of the
device it dialed (`crypto.seal_anonymous`), so whoever else answered reads
nothing; the responder answers with its own proof only once it knows the
initiator. Neither side shows anything that identifies it to a device it
does not know. A dialer that the device it dialed may not know yet (it was
added while that one was away) seals with its proof an *introduction*, the
ops that make it a member (`covey.core.introduction`), bounded by
`MAX_PROOF_GROUPS`, `MAX_PROOF_OPS` and `MAX_PROOF_BYTES`.

Application messages (sync messages, up to `MAX_MESSAGE` bytes) travel as
one or more Noise transport messages: each plaintext starts with one byte,
1 if more fragments of the same message follow, else 0.

On the wire every Noise message is preceded by its length as two bytes,
big-endian (the Noise specification's suggestion); `frame` and `Deframer`
do that part.
"""

from __future__ import annotations

from typing import Any, Final

from covey.core import crypto, encoding, noise
from covey.core.identity import DeviceRecord, Identity
from covey.errors import BadSignature, MalformedMessage, OversizeMessage, PeerRefused

PROLOGUE: Final = b"covey/v1/channel"
PATTERN: Final = "NN"
#: The largest application message: a sync message's limit.
MAX_MESSAGE: Final = 4 << 20
#: Plaintext per Noise transport message: 65,535 less the tag and the flag byte.
FRAGMENT: Final = noise.MAX_MESSAGE - 16 - 1
LENGTH_BYTES: Final = 2
#: Fragments of one message, at most: what MAX_MESSAGE needs, and no more.
MAX_FRAGMENTS: Final = -(-MAX_MESSAGE // FRAGMENT)
#: The first bytes a dialing device sends, before any Noise message: which
#: protocol follows. A channel (Noise_NN, proofs, then sync), or pairing
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


def fragments(
    transport: noise.Transport, message: bytes, max_message: int = MAX_MESSAGE
) -> list[bytes]:
    """`message` as framed Noise transport messages."""
    if len(message) > max_message:
        raise OversizeMessage(f"a channel message is at most {max_message} bytes")
    pieces = [message[i : i + FRAGMENT] for i in range(0, len(message), FRAGMENT)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        flag = MORE if index < len(pieces) - 1 else LAST
        out.append(frame(transport.encrypt(flag + piece)))
    return out


class Reassembler:
    """Puts fragments back together; refuses a message over `max_message`."""

    def __init__(self, transport: noise.Transport, max_message: int = MAX_MESSAGE) -> None:
        self._transport = transport
        self._max = max_message
        self._max_fragments = -(-max_message // FRAGMENT)
        self._parts: list[bytes] = []
        self._size = 0

    def push(self, noise_message: bytes) -> bytes | None:
        """The whole message once its last fragment arrives, else None."""
        plain = self._transport.decrypt(noise_message)
        if not plain or plain[:1] not in (MORE, LAST):
            raise MalformedMessage("a channel fragment has no valid flag")
        if plain[:1] == MORE and len(plain) == 1:
            raise MalformedMessage("a channel fragment that is not the last may not be empty")
        if len(self._parts) >= self._max_fragments:
            raise OversizeMessage("a channel message has too many fragments")
        self._size += len(plain) - 1
        if self._size > self._max:
            raise OversizeMessage(f"a channel message is at most {self._max} bytes")
        self._parts.append(plain[1:])
        if plain[:1] == MORE:
            return None
        message = b"".join(self._parts)
        self._parts, self._size = [], 0
        return message


#: A proof is small: [device ID or device record, signature]. A device
#: record is a few hundred bytes (a 64-character name at most).
PROOF_LIMITS: Final = encoding.Limits(
    total=2048, bin_len=1024, str_len=0, array_len=2, map_len=0, depth=1, objects=3
)


#: An introduction (PROTOCOL.md section 13): what a dialer adds to its sealed
#: proof for a device that may not know it yet, per group the two share, the
#: ops that make the dialer a member there. Bounded, so that whoever can seal
#: a proof to a node (anyone holding its device record) makes it parse at
#: most this much: groups named, ops in all, and bytes of those ops in all.
MAX_PROOF_GROUPS: Final = 16
MAX_PROOF_OPS: Final = 256
MAX_PROOF_BYTES: Final = 1 << 20
#: A dialer's proof with an introduction: `[ID, signature, [[group ID, [op,
#: ...]], ...]]`. The framing around the ops is a few bytes per op and group.
INTRODUCED_LIMITS: Final = encoding.Limits(
    total=MAX_PROOF_BYTES + 4096,
    bin_len=MAX_PROOF_BYTES,
    str_len=0,
    array_len=MAX_PROOF_OPS,
    map_len=0,
    depth=5,
    objects=4 + 3 * MAX_PROOF_GROUPS + MAX_PROOF_OPS,
)
GROUP_ID_BYTES: Final = 32

#: Per group: its ID and the ops (their bytes, in causal order).
Introduction = list[tuple[bytes, list[bytes]]]


def proof(
    me: Identity,
    domain: crypto.SignDomain,
    handshake_hash: bytes,
    *,
    record: bool,
    introduction: Introduction | None = None,
) -> bytes:
    """This device's proof for one session: `[ID or record, signature over the hash]`.

    The signature covers the handshake hash, which is unique to the session
    (both sides' ephemeral keys are in it), under the domain of this side's
    role: it cannot be replayed in another session or reflected back.
    `record=True` sends the signed device record (pairing: the inviter does
    not know the joiner yet); otherwise the device ID, for a peer that knows
    the record. An `introduction` (a dialer's only, sealed with the proof)
    is a third item: `[[group ID, [op, ...]], ...]`, within the limits above.
    """
    signature = crypto.sign(me.secrets.signing_seed, domain, handshake_hash)
    first = me.record_bytes if record else me.device_id.raw
    if not introduction:
        return encoding.encode([first, signature])
    entries = [[group, list(ops)] for group, ops in introduction]
    return encoding.encode([first, signature, entries], INTRODUCED_LIMITS)


def read_proof(data: bytes) -> tuple[bytes, bytes]:
    """(device ID or record bytes, signature) from a proof; MalformedMessage if it is not one."""
    value = encoding.decode(data, PROOF_LIMITS)
    if not isinstance(value, list) or len(value) != 2:
        raise MalformedMessage("not a proof of a device")
    return _identified(value)


def _identified(value: list[Any]) -> tuple[bytes, bytes]:
    """(device ID or record, signature): the first two items of a proof."""
    first, signature = value[0], value[1]
    if (
        not isinstance(first, bytes)
        or not 0 < len(first) <= PROOF_LIMITS.bin_len
        or not isinstance(signature, bytes)
        or len(signature) != crypto.SIGNATURE_BYTES
    ):
        raise MalformedMessage("not a proof of a device")
    return first, signature


def read_dialer_proof(data: bytes) -> tuple[bytes, bytes, Introduction]:
    """(device ID, signature, introduction) from a dialer's proof, as opened.

    MalformedMessage for anything but a proof, with or without an
    introduction within `MAX_PROOF_GROUPS`, `MAX_PROOF_OPS` and
    `MAX_PROOF_BYTES` (each group named once, none with no ops).
    """
    value = encoding.decode(data, INTRODUCED_LIMITS)
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise MalformedMessage("not a proof of a device")
    device, signature = _identified(value)
    if len(value) == 2:
        return device, signature, []
    entries = value[2]
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_PROOF_GROUPS:
        raise MalformedMessage(f"an introduction names 1 to {MAX_PROOF_GROUPS} groups")
    introduction: Introduction = []
    seen: set[bytes] = set()
    count = size = 0
    for entry in entries:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], bytes)
            or len(entry[0]) != GROUP_ID_BYTES
            or entry[0] in seen
            or not isinstance(entry[1], list)
            or not entry[1]
            or not all(isinstance(op, bytes) for op in entry[1])
        ):
            raise MalformedMessage("an introduction is [group ID, [op, ...]] per group, once each")
        seen.add(entry[0])
        count += len(entry[1])
        size += sum(len(op) for op in entry[1])
        introduction.append((entry[0], entry[1]))
    if count > MAX_PROOF_OPS or size > MAX_PROOF_BYTES:
        raise OversizeMessage(
            f"an introduction holds at most {MAX_PROOF_OPS} ops and {MAX_PROOF_BYTES} bytes of them"
        )
    return device, signature, introduction


def check_proof(
    record: DeviceRecord, signature: bytes, domain: crypto.SignDomain, handshake_hash: bytes
) -> None:
    """Raise PeerRefused unless `record`'s signing key signed this session's hash."""
    try:
        crypto.verify(record.signing_key, domain, handshake_hash, signature)
    except BadSignature:
        raise PeerRefused("the peer did not prove it is the device it names") from None
