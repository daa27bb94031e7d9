"""What a device puts on a relay, and the keys it derives to do so (PROTOCOL.md 18.2, 18.3).

Everything here is pure: keys in, bytes out.

* **Inbox items** are sealed to the recipient device's box key (a sealed box
  from a fresh key pair: the relay cannot tell who sent it) around an
  envelope the sender signs (type `relay-item`: the group, the recipient,
  what it carries, the bytes), so the recipient knows who did, and can
  check that the item was meant for this inbox (a relay cannot move an
  item from one of a device's inboxes to another).
* **Mirror items** are encrypted under a key derived from the epoch key
  (XChaCha20-Poly1305, the segment ID as associated data) around the same
  signed envelope.
* Both are padded *inside* the encryption so that what the relay stores is
  exactly one of `ITEM_SIZES` bytes: a 4-byte length, the envelope, zeros.
* **Tokens**: an inbox's write token for an epoch; a segment's write token,
  from which the relay derives the read token and the segment ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from covey.core import Rng, crypto, encoding, fields, wire
from covey.core.identity import Identity
from covey.errors import MalformedMessage, OversizeMessage

#: The sizes a relay stores (the relay checks them too: `covey.relay.limits`).
ITEM_SIZES: Final = (1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20)
LENGTH_BYTES: Final = 4
#: What sealing adds around the padded plaintext.
INBOX_OVERHEAD: Final = crypto.ANONYMOUS_OVERHEAD
MIRROR_OVERHEAD: Final = crypto.AEAD_OVERHEAD
#: What an item may carry.
KINDS: Final = ("ops", "welcome", "share")
ID_BYTES: Final = 32


@dataclass(frozen=True)
class ItemBody:
    """The signed inside of a relay item."""

    TYPE: ClassVar[str] = "relay-item"
    group: bytes
    #: The device it is for (an inbox item), or empty (a mirror item: all members).
    recipient: bytes
    kind: str
    payload: bytes

    def to_wire(self) -> Any:
        return {"g": self.group, "k": self.kind, "p": self.payload, "r": self.recipient}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("g", "k", "p", "r"), what="relay item")
        kind = fields.get_str(body, "k", max_len=16)
        if kind not in KINDS:
            raise MalformedMessage("a relay item carries ops, a welcome or a share")
        recipient = fields.get_bytes(body, "r", max_len=ID_BYTES)
        if len(recipient) not in (0, ID_BYTES):
            raise MalformedMessage("a relay item's recipient is a device ID or none")
        return cls(
            fields.get_bytes(body, "g", size=ID_BYTES),
            recipient,
            kind,
            fields.get_bytes(body, "p", max_len=ITEM_SIZES[-1]),
        )


ACCEPT: Final = {ItemBody.TYPE: ItemBody}


def pad(data: bytes, overhead: int) -> bytes:
    """`data` behind its 4-byte length, zeros after: with `overhead` added by
    the encryption around it, exactly one of `ITEM_SIZES` bytes."""
    need = LENGTH_BYTES + len(data) + overhead
    for size in ITEM_SIZES:
        if need <= size:
            return len(data).to_bytes(LENGTH_BYTES, "big") + data + bytes(size - need)
    raise OversizeMessage(f"a relay item holds at most {ITEM_SIZES[-1] - overhead - 4} bytes")


def unpad(plain: bytes) -> bytes:
    """What `pad` padded; MalformedMessage unless the rest is zeros."""
    length = int.from_bytes(plain[:LENGTH_BYTES], "big")
    end = LENGTH_BYTES + length
    if len(plain) < end or plain[end:] != bytes(len(plain) - end):
        raise MalformedMessage("a relay item's padding is not zeros")
    return plain[LENGTH_BYTES:end]


def seal_for_inbox(
    me: Identity, recipient: bytes, recipient_box_key: bytes, body: ItemBody, rng: Rng
) -> bytes:
    """An inbox item for `recipient`, signed by this device, padded, sealed to it."""
    if body.recipient != recipient:
        raise ValueError("the item names another recipient")
    envelope = wire.seal_envelope(body, me.device_id.raw, me.secrets.signing_seed)
    return crypto.seal_anonymous(recipient_box_key, pad(envelope, INBOX_OVERHEAD), rng)


def open_from_inbox(
    me: Identity, group: bytes, item: bytes, keys: wire.KeyLookup
) -> wire.Envelope[ItemBody]:
    """Open an item from this device's inbox for `group`: who sent it, what it carries.

    Refused (a typed InvalidInput) unless it is sealed to this device, signed
    by a device `keys` knows, and names this group and this device.
    """
    unverified, _ = unseal_from_inbox(me, group, item)
    return wire.verify_envelope(unverified, ACCEPT, keys(unverified.author))


def unseal_from_inbox(me: Identity, group: bytes, item: bytes) -> tuple[wire.Unverified, ItemBody]:
    """An inbox item sealed to this device, naming this group and this device, its
    signature NOT checked yet: (the envelope, its body).

    For a sender this device does not know yet (a member added while it was
    away): the ops inside may introduce it, and each op is checked on its
    own; the item's signature is checked once the sender is known
    (`wire.verify_envelope`).
    """
    if len(item) not in ITEM_SIZES:
        raise MalformedMessage("a relay item has none of the padded sizes")
    plain = crypto.open_anonymous(me.secrets.box_secret, item)
    unverified = wire.parse_envelope(unpad(plain))
    if unverified.type != ItemBody.TYPE:
        raise MalformedMessage("an inbox item holds a relay item")
    body = ItemBody.from_wire(unverified.body)
    if body.group != group or body.recipient != me.device_id.raw:
        raise MalformedMessage("that relay item was meant for another inbox")
    return unverified, body


def seal_for_mirror(me: Identity, key: bytes, segment: bytes, body: ItemBody, rng: Rng) -> bytes:
    """A mirror item: signed by this device, padded, encrypted under the epoch's
    mirror key (`mirror_key`), bound to its segment."""
    if body.recipient:
        raise ValueError("a mirror item is for every member")
    envelope = wire.seal_envelope(body, me.device_id.raw, me.secrets.signing_seed)
    return crypto.aead_seal(key, pad(envelope, MIRROR_OVERHEAD), segment, rng)


def open_from_mirror(
    key: bytes, segment: bytes, group: bytes, item: bytes, keys: wire.KeyLookup
) -> wire.Envelope[ItemBody]:
    """Open a mirror item of `segment` for `group`: who put it, what it carries."""
    unverified, _ = unseal_from_mirror(key, segment, group, item)
    return wire.verify_envelope(unverified, ACCEPT, keys(unverified.author))


def unseal_from_mirror(
    key: bytes, segment: bytes, group: bytes, item: bytes
) -> tuple[wire.Unverified, ItemBody]:
    """A mirror item of `segment` for `group`, its signature NOT checked yet (as
    `unseal_from_inbox`: a sender not known yet is introduced by its ops)."""
    if len(item) not in ITEM_SIZES:
        raise MalformedMessage("a relay item has none of the padded sizes")
    plain = crypto.aead_open(key, item, segment)
    unverified = wire.parse_envelope(unpad(plain))
    if unverified.type != ItemBody.TYPE:
        raise MalformedMessage("a mirror item holds a relay item")
    body = ItemBody.from_wire(unverified.body)
    if body.group != group or body.recipient:
        raise MalformedMessage("that mirror item belongs to another group")
    return unverified, body


# --- keys and tokens ---------------------------------------------------------------


def inbox_key(signing_seed: bytes, group_id: bytes, relay_key: bytes) -> tuple[bytes, bytes]:
    """(seed, public key) of a device's inbox for a group at a relay (PROTOCOL.md 18.2).

    Derived, never stored: a device's inbox at one relay for one group is
    always the same, so it is announced once (`set_inbox`)."""
    seed = crypto.derive_key(signing_seed, crypto.HashDomain.RELAY_INBOX_KEY, group_id + relay_key)
    return seed, crypto.signing_public_key(seed)


def inbox_id(public: bytes) -> bytes:
    """An inbox's ID: the hash of its owner's public key for it."""
    return crypto.blake2b(public, crypto.HashDomain.RELAY_INBOX_ID)


def my_inbox(signing_seed: bytes, group_id: bytes, relay_key: bytes) -> bytes:
    """The ID of a device's inbox for a group at a relay."""
    return inbox_id(inbox_key(signing_seed, group_id, relay_key)[1])


def inbox_token(epoch_key: bytes, inbox: bytes) -> bytes:
    """Who holds the epoch may write to this inbox (its owner registers the hash)."""
    return crypto.derive_key(epoch_key, crypto.HashDomain.RELAY_INBOX_WRITE, inbox)


def segment_token(epoch_key: bytes, relay_key: bytes) -> bytes:
    """The write token of this epoch's mirror segment at a relay."""
    return crypto.derive_key(epoch_key, crypto.HashDomain.RELAY_SEGMENT_WRITE, relay_key)


def mirror_key(epoch_key: bytes, relay_key: bytes) -> bytes:
    """The key this epoch's mirror items at a relay are encrypted under."""
    return crypto.derive_key(epoch_key, crypto.HashDomain.RELAY_MIRROR_KEY, relay_key)


# --- pairing through a relay (PROTOCOL.md 18.6) ---------------------------------------

#: Bytes of a tunnel session's ID (drawn by the joiner).
SESSION_BYTES: Final = 16
#: Bytes of pairing data one tunnel item carries (a welcome is sent in pieces).
TUNNEL_DATA: Final = 60 << 10
TUNNEL_LIMITS: Final = encoding.Limits(
    total=ITEM_SIZES[3], bin_len=TUNNEL_DATA, str_len=1, array_len=0, map_len=5, depth=2, objects=16
)


def rendezvous_token(
    relay_key: bytes, *, nameplate: int | None = None, link_key: bytes | None = None
) -> bytes:
    """The write token of an invitation's rendezvous segment at a relay.

    From a link's key when the joiner has the link (the relay learns nothing
    of it); from the invitation's number otherwise: the number is not secret
    (it names the invitation, as magic-wormhole's nameplate does), and the
    code's words never reach the relay in any form.
    """
    if link_key is not None:
        return crypto.derive_key(link_key, crypto.HashDomain.RELAY_RENDEZVOUS, b"k" + relay_key)
    if nameplate is None:
        raise ValueError("a rendezvous needs a number or a link key")
    number = b"n" + nameplate.to_bytes(2, "big")
    return crypto.derive_key(relay_key, crypto.HashDomain.RELAY_RENDEZVOUS, number)


@dataclass(frozen=True)
class TunnelItem:
    """One piece of a pairing's byte stream through a rendezvous segment."""

    session: bytes
    #: "i" (the inviter) or "j" (the joiner).
    sender: str
    #: 1, 2, ... per session and sender: the stream's order (the relay's may lie).
    seq: int
    data: bytes
    #: The sender closed the stream after this piece.
    end: bool

    def to_bytes(self) -> bytes:
        value = {"d": self.data, "e": self.end, "f": self.sender, "n": self.seq, "s": self.session}
        return pad(encoding.encode(value, TUNNEL_LIMITS), 0)

    @classmethod
    def from_bytes(cls, item: bytes) -> TunnelItem:
        """MalformedMessage unless it is exactly a padded tunnel item."""
        if len(item) not in ITEM_SIZES:
            raise MalformedMessage("a relay item has none of the padded sizes")
        value = encoding.decode(unpad(item), TUNNEL_LIMITS)
        body = fields.as_map(value, ("d", "e", "f", "n", "s"), what="tunnel item")
        sender = fields.get_str(body, "f", max_len=1)
        if sender not in ("i", "j") or type(body["e"]) is not bool:
            raise MalformedMessage("a tunnel item is from the inviter or the joiner")
        return cls(
            fields.get_bytes(body, "s", size=SESSION_BYTES),
            sender,
            fields.get_int(body, "n", min_value=1, max_value=1 << 32),
            fields.get_bytes(body, "d", max_len=TUNNEL_DATA),
            body["e"],
        )
