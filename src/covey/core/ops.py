"""Membership operations: the signed entries of a group's log.

Every change to a group is an op: a signed envelope of type `op` whose body is

    {"g": group, "k": kind, "p": [parents], "s": seq, "t": time, "b": body}

* `g`: the group ID, which is the ID of the group's genesis op. A genesis op
  has no group yet: its `g` is 32 random bytes that make its ID unique.
* `p`: the IDs of the author's heads when it wrote the op, sorted, unique;
  empty only for genesis.
* `s`: the author's own sequence number in this group: 1 for its first op,
  then one more than its latest op in the causal past (checked by the log).
* `t`: the author's clock, Unix seconds: shown to people, never trusted.
* `b`: the kind's body (below).

An op's ID is BLAKE2b-256 of its `signed` bytes (the envelope's signed part,
exactly as received) under the domain `covey/v1/opid`.

This module only parses and builds ops; what they may do, and how concurrent
ops merge, is `covey.core.membership`.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, Self, TypeAlias

from covey.core import crypto, encoding, fields, wire
from covey.core.identity import MAX_NAME_LEN, MAX_TIME, DeviceRecord, open_device_record
from covey.errors import InvalidInput, MalformedMessage

ID_BYTES: Final = 32
#: Parents per op: an author's heads. More than this many concurrent heads
#: are merged in steps.
MAX_PARENTS: Final = 64
#: A box-wrapped 32-byte key: 24-byte nonce + 16-byte MAC + 32 bytes.
WRAPPED_KEY_BYTES: Final = 72
#: Members a rotation can wrap for (bounded by the wire's array limit too).
MAX_RECIPIENTS: Final = 20_000
#: Links one op carries back to the epochs just before it (the tops of its
#: causal past: one as a rule, one per merged branch after a partition, and
#: any an earlier author could not link). More wait for the next op.
MAX_LINKS: Final = 64
#: A linked key: XChaCha20-Poly1305 of 32 bytes, 24-byte nonce + 32 + 16-byte tag.
LINK_BYTES: Final = 24 + 32 + 16
MAX_SEQ: Final = (1 << 63) - 1

Role = Literal["admin", "member"]
History = Literal["shared", "forward"]
ROLES: Final = ("admin", "member")
HISTORIES: Final = ("shared", "forward")


#: The lengths a wrapped key and a link's sealed key (or a cut) may have.
_WRAP_SIZES: Final = frozenset((WRAPPED_KEY_BYTES,))
_LINK_SIZES: Final = frozenset((0, LINK_BYTES))


def op_id(signed: bytes) -> bytes:
    return crypto.blake2b(signed, crypto.HashDomain.OP_ID)


def _choice(body: dict[str, Any], name: str, options: tuple[str, ...]) -> Any:
    value = fields.get_str(body, name, max_len=16)
    if value not in options:
        raise MalformedMessage(f"field {name!r} must be one of {', '.join(options)}")
    return value


#: Device records opened, by their bytes: a record comes again in every add
#: of the same device and in every replica's genesis; opening it verifies a
#: signature, the same answer each time for the same bytes.
RECORD_CACHE_SIZE: Final = 4096


@functools.lru_cache(maxsize=RECORD_CACHE_SIZE)
def _opened_record(raw: bytes) -> DeviceRecord:
    return open_device_record(raw).body


def _record(body: dict[str, Any], name: str) -> tuple[DeviceRecord, bytes]:
    raw = fields.get_bytes(body, name, max_len=1024)
    try:
        return _opened_record(raw), raw
    except InvalidInput as exc:
        raise MalformedMessage(f"field {name!r} is not a valid device record") from exc


@dataclass(frozen=True, slots=True)
class Rotation:
    """A new epoch key, committed to and wrapped for every member."""

    #: A value derived from the epoch key (`keys.commitment`: BLAKE2b keyed
    #: by it over nothing, domain "covey/v1/epochc", PROTOCOL.md section 8): lets a
    #: recipient check the key it unwrapped is the one every other member got.
    commitment: bytes
    #: The recipients' device IDs, sorted, once each.
    devices: tuple[bytes, ...]
    #: The box-wrapped key for each of `devices`, in the same order.
    wrapped: tuple[bytes, ...]
    #: The devices as a set, built once (the merge and the heal ask often).
    recipients: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipients", frozenset(self.devices))

    @classmethod
    def of(cls, commitment: bytes, wraps: Iterable[tuple[bytes, bytes]]) -> Rotation:
        """A rotation from (device ID, wrapped key) pairs, sorted by device ID."""
        pairs = tuple(wraps)
        return cls(commitment, tuple(d for d, _ in pairs), tuple(w for _, w in pairs))

    @property
    def wraps(self) -> tuple[tuple[bytes, bytes], ...]:
        """(device ID, wrapped key) pairs, sorted by device ID."""
        return tuple(zip(self.devices, self.wrapped, strict=True))

    def wrap_for(self, device: bytes) -> bytes | None:
        devices = self.devices
        i = bisect.bisect_left(devices, device)  # sorted by device ID
        if i < len(devices) and devices[i] == device:
            return self.wrapped[i]
        return None

    def to_wire(self) -> Any:
        return {"c": self.commitment, "w": [[d, w] for d, w in self.wraps]}

    @classmethod
    def from_wire(cls, value: Any) -> Rotation:
        body = fields.as_map(value, ("c", "w"), what="rotation")
        wraps = body["w"]
        if type(wraps) is not list or not 0 < len(wraps) <= MAX_RECIPIENTS:
            raise MalformedMessage("a rotation wraps for 1 to 20,000 members")
        devices, wrapped = fields.sorted_pairs(
            wraps,
            first=ID_BYTES,
            second=_WRAP_SIZES,
            shape="a wrapped key is [device ID, 72 bytes]",
            order="wrapped keys must be sorted by device ID, once each",
        )
        return cls(fields.get_bytes(body, "c", size=32), devices, wrapped)


@dataclass(frozen=True, slots=True)
class Link:
    """One epoch an op follows, and that epoch's key sealed under the op's new key.

    `sealed` empty is a *cut*: the chain deliberately stops there (walking
    it would give a recipient of the new epoch a key it was never wrapped,
    which the group's `forward` history forbids). PROTOCOL.md section 8.
    """

    #: The earlier epoch (the ID of the op that started it).
    epoch: bytes
    #: Its key, sealed under a key derived from the new epoch's (LINK_BYTES), or b"".
    sealed: bytes

    @property
    def cut(self) -> bool:
        return not self.sealed


Links: TypeAlias = tuple[Link, ...]


def links_to_wire(links: Links) -> Any:
    return [[link.epoch, link.sealed] for link in links]


def links_from_wire(value: Any) -> Links:
    """The `hist` field: at most MAX_LINKS [epoch ID, sealed key or empty], sorted, once each."""
    if type(value) is not list or len(value) > MAX_LINKS:
        raise MalformedMessage(f"an op links back to at most {MAX_LINKS} epochs")
    epochs, sealed = fields.sorted_pairs(
        value,
        first=ID_BYTES,
        second=_LINK_SIZES,
        shape=f"a history link is [epoch ID, {LINK_BYTES} bytes or empty]",
        order="history links must be sorted by epoch ID, once each",
    )
    return tuple(map(Link, epochs, sealed))


@dataclass(frozen=True, slots=True)
class Genesis:
    KIND: ClassVar[str] = "genesis"
    name: str
    history: History
    founder: DeviceRecord
    founder_raw: bytes
    rotation: Rotation

    def to_wire(self) -> Any:
        return {
            "name": self.name,
            "history": self.history,
            "founder": self.founder_raw,
            "rot": self.rotation.to_wire(),
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("name", "history", "founder", "rot"), what="genesis")
        founder, raw = _record(body, "founder")
        return cls(
            fields.get_str(body, "name", min_len=1, max_len=MAX_NAME_LEN),
            _choice(body, "history", HISTORIES),
            founder,
            raw,
            Rotation.from_wire(body["rot"]),
        )


@dataclass(frozen=True, slots=True)
class Add:
    KIND: ClassVar[str] = "add"
    device: DeviceRecord
    device_raw: bytes
    role: Role
    rotation: Rotation
    #: The epochs this one follows, linked or cut (PROTOCOL.md section 8).
    links: Links

    @property
    def target(self) -> bytes:
        return self.device.device_id.raw

    def to_wire(self) -> Any:
        return {
            "device": self.device_raw,
            "role": self.role,
            "rot": self.rotation.to_wire(),
            "hist": links_to_wire(self.links),
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("device", "role", "rot", "hist"), what="add")
        device, raw = _record(body, "device")
        return cls(
            device,
            raw,
            _choice(body, "role", ROLES),
            Rotation.from_wire(body["rot"]),
            links_from_wire(body["hist"]),
        )


@dataclass(frozen=True, slots=True)
class Remove:
    KIND: ClassVar[str] = "remove"
    target: bytes
    rotation: Rotation
    links: Links

    def to_wire(self) -> Any:
        return {
            "device": self.target,
            "rot": self.rotation.to_wire(),
            "hist": links_to_wire(self.links),
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("device", "rot", "hist"), what="remove")
        return cls(
            fields.get_bytes(body, "device", size=ID_BYTES),
            Rotation.from_wire(body["rot"]),
            links_from_wire(body["hist"]),
        )


@dataclass(frozen=True, slots=True)
class SetRole:
    KIND: ClassVar[str] = "set_role"
    target: bytes
    role: Role

    def to_wire(self) -> Any:
        return {"device": self.target, "role": self.role}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("device", "role"), what="set_role")
        return cls(fields.get_bytes(body, "device", size=ID_BYTES), _choice(body, "role", ROLES))


@dataclass(frozen=True, slots=True)
class Rotate:
    KIND: ClassVar[str] = "rotate"
    rotation: Rotation
    links: Links

    def to_wire(self) -> Any:
        return {"rot": self.rotation.to_wire(), "hist": links_to_wire(self.links)}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("rot", "hist"), what="rotate")
        return cls(Rotation.from_wire(body["rot"]), links_from_wire(body["hist"]))


@dataclass(frozen=True, slots=True)
class SetPolicy:
    KIND: ClassVar[str] = "set_policy"
    history: History

    def to_wire(self) -> Any:
        return {"history": self.history}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("history",), what="set_policy")
        return cls(_choice(body, "history", HISTORIES))


#: Characters of a relay's host: a DNS name, an IPv4 or an IPv6 address.
MAX_RELAY_HOST: Final = 253
#: A relay's Ed25519 key and its access secret (PROTOCOL.md section 18.1).
RELAY_KEY_BYTES: Final = 32


def valid_relay_host(host: str) -> bool:
    """Whether `host` may name a relay: an IPv4 or IPv6 address in its one canonical
    form, or a DNS name (lowercase labels of 1 to 63 letters, digits and inner
    dashes, the last not starting with a digit).

    So a host read from the log can be shown and dialed as it is, and no
    other spelling of an address passes as a name (review: "2130706433" and
    "0x7f000001" resolve to 127.0.0.1).
    """
    if not 0 < len(host) <= MAX_RELAY_HOST or host != host.lower() or "%" in host:
        return False  # (an IPv6 zone, "%eth0", means nothing to another device)
    try:
        return str(ipaddress.ip_address(host)) == host
    except ValueError:
        pass
    labels = host.split(".")
    return not labels[-1][:1].isdigit() and all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c in _HOST_CHARACTERS for c in label)
        for label in labels
    )


_HOST_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True, slots=True)
class AddRelay:
    """A relay the group's members use (or where it moved): its pinned key, address, access."""

    KIND: ClassVar[str] = "add_relay"
    #: The relay's Ed25519 public key: it identifies the relay in the group.
    key: bytes
    host: str
    port: int
    #: The relay's access secret (members may make inboxes and segments there).
    access: bytes

    def to_wire(self) -> Any:
        return {"access": self.access, "host": self.host, "key": self.key, "port": self.port}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("access", "host", "key", "port"), what="add_relay")
        host = fields.get_str(body, "host", min_len=1, max_len=MAX_RELAY_HOST)
        if not valid_relay_host(host):
            raise MalformedMessage("a relay's host is a lowercase name or address")
        return cls(
            fields.get_bytes(body, "key", size=RELAY_KEY_BYTES),
            host,
            fields.get_int(body, "port", min_value=1, max_value=65535),
            fields.get_bytes(body, "access", size=RELAY_KEY_BYTES),
        )


@dataclass(frozen=True, slots=True)
class RemoveRelay:
    """Members stop using a relay (named by its key)."""

    KIND: ClassVar[str] = "remove_relay"
    key: bytes

    def to_wire(self) -> Any:
        return {"key": self.key}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("key",), what="remove_relay")
        return cls(fields.get_bytes(body, "key", size=RELAY_KEY_BYTES))


@dataclass(frozen=True, slots=True)
class SetInbox:
    """Its author's inbox at one of the group's relays, where members put items for it."""

    KIND: ClassVar[str] = "set_inbox"
    #: The relay's key.
    relay: bytes
    #: The inbox ID (`covey.core.relayitems`: a hash of the inbox's public key).
    box: bytes

    def to_wire(self) -> Any:
        return {"box": self.box, "relay": self.relay}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("box", "relay"), what="set_inbox")
        return cls(
            fields.get_bytes(body, "relay", size=RELAY_KEY_BYTES),
            fields.get_bytes(body, "box", size=ID_BYTES),
        )


#: A person's ID: group-scoped, random, drawn by the admin who first names
#: the person (PROTOCOL.md section 6.4).
PERSON_BYTES: Final = 16


def implicit_person(device: bytes) -> bytes:
    """The person of a device no `set_person` placed: its own, named after it.

    A device ID's first 16 bytes: a hash's, so no admin-drawn ID meets one
    by chance; an admin who names it on purpose puts a device with that
    one (`covey person set ... --with DEVICE`).
    """
    return device[:PERSON_BYTES]


@dataclass(frozen=True, slots=True)
class SetPerson:
    """Places a member in a person (a group-scoped ID with a display name).

    Recovery and its veto act per person (PROTOCOL.md section 6.4): which
    devices are one person's is the admins' word, never a device's own.
    The name in the op names the person from then on (the latest applied
    wins), so renaming a person is a `set_person` for one of its devices.
    """

    KIND: ClassVar[str] = "set_person"
    target: bytes
    person: bytes
    name: str

    def to_wire(self) -> Any:
        return {"device": self.target, "name": self.name, "person": self.person}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("device", "name", "person"), what="set_person")
        return cls(
            fields.get_bytes(body, "device", size=ID_BYTES),
            fields.get_bytes(body, "person", size=PERSON_BYTES),
            fields.get_str(body, "name", min_len=1, max_len=MAX_NAME_LEN),
        )


#: A dealing's nonce (it keys the share digests, PROTOCOL.md 19.1).
DEAL_NONCE_BYTES: Final = 16
#: Slots of one dealing: SLIP-39's limit of members in a group.
MAX_SLOTS: Final = 16
#: Sealed copies of one holder person's share: one per member device of theirs.
MAX_COPIES: Final = 64
#: A sealed copy: an anonymous box (32-byte key, 24-byte nonce, 16-byte tag)
#: of [group, nonce, index, mnemonic]; a 33-word mnemonic is at most 33 x 9
#: characters.
MAX_SEALED_SHARE: Final = 512
#: A dealing's veto window, in seconds: at least a minute (tests), at most 30 days.
MIN_VETO: Final = 60
MAX_VETO: Final = 30 * 86400
#: Member devices of one person a recovery's completion replaces.
MAX_REPLACED: Final = 64
#: The recovery record's name (PROTOCOL.md 19.1).
RECOVERY_NAME: Final = "recovery"


@dataclass(frozen=True, slots=True)
class Slot:
    """One share of a dealing: its SLIP-39 member index, holder and digest."""

    #: The share's SLIP-39 member index (0 to 15).
    index: int
    #: The holder person, or None for a paper share.
    person: bytes | None
    #: BLAKE2b-256 of the whole share, keyed by the dealing's nonce.
    digest: bytes
    #: (device ID, sealed copy) for each member device of the holder person,
    #: sorted by device ID; empty for paper.
    copies: tuple[tuple[bytes, bytes], ...]

    def to_wire(self) -> Any:
        return [self.index, self.person or b"", self.digest, [[d, c] for d, c in self.copies]]

    @classmethod
    def from_wire(cls, value: Any) -> Slot:
        if type(value) is not list or len(value) != 4:
            raise MalformedMessage("a slot is [index, person, digest, copies]")
        index, person, digest, copies = value
        fields.get_int({"index": index}, "index", min_value=0, max_value=MAX_SLOTS - 1)
        if type(person) is not bytes or len(person) not in (0, PERSON_BYTES):
            raise MalformedMessage("a slot's person is 16 bytes, or empty for paper")
        fields.get_bytes({"digest": digest}, "digest", size=32)
        if type(copies) is not list or len(copies) > MAX_COPIES:
            raise MalformedMessage(f"a slot has at most {MAX_COPIES} sealed copies")
        devices, sealed = fields.sorted_pairs(
            copies,
            first=ID_BYTES,
            second=frozenset(range(1, MAX_SEALED_SHARE + 1)),
            shape="a sealed copy is [device ID, sealed share]",
            order="sealed copies must be sorted by device ID, once each",
        )
        if bool(person) != bool(devices):
            raise MalformedMessage("a holder's slot has sealed copies, a paper slot none")
        return cls(index, person or None, digest, tuple(zip(devices, sealed, strict=True)))


@dataclass(frozen=True, slots=True)
class Deal:
    """A dealing of recovery shares (PROTOCOL.md 19.1): an admin's op.

    The shares themselves are never here: holders' shares only sealed to
    their devices, paper shares not at all. The recovery record's keys
    derive from the secret, so only K shares together can sign as it.
    """

    KIND: ClassVar[str] = "deal"
    nonce: bytes
    threshold: int
    #: The recovery record (a device record signed by the recovery key).
    record: DeviceRecord
    record_raw: bytes
    #: Sorted by index, each index once.
    slots: tuple[Slot, ...]
    #: The veto window, in seconds.
    veto: int

    @property
    def paper(self) -> tuple[Slot, ...]:
        return tuple(slot for slot in self.slots if slot.person is None)

    def to_wire(self) -> Any:
        return {
            "k": self.threshold,
            "nonce": self.nonce,
            "rec": self.record_raw,
            "slots": [slot.to_wire() for slot in self.slots],
            "veto": self.veto,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("k", "nonce", "rec", "slots", "veto"), what="deal")
        slots = body["slots"]
        if type(slots) is not list or not 0 < len(slots) <= MAX_SLOTS:
            raise MalformedMessage(f"a dealing has 1 to {MAX_SLOTS} slots")
        parsed = tuple(Slot.from_wire(slot) for slot in slots)
        indices = [slot.index for slot in parsed]
        if indices != sorted(set(indices)):
            raise MalformedMessage("slots must be sorted by index, once each")
        persons = [slot.person for slot in parsed if slot.person is not None]
        if len(persons) != len(set(persons)):
            raise MalformedMessage("a person holds one slot of a dealing")
        record, raw = _record(body, "rec")
        if record.name != RECOVERY_NAME:
            raise MalformedMessage(f"a recovery record is named {RECOVERY_NAME!r}")
        return cls(
            fields.get_bytes(body, "nonce", size=DEAL_NONCE_BYTES),
            fields.get_int(body, "k", min_value=2, max_value=MAX_SLOTS),
            record,
            raw,
            parsed,
            fields.get_int(body, "veto", min_value=MIN_VETO, max_value=MAX_VETO),
        )


RequestKind = Literal["admit", "recover"]
REQUEST_KINDS: Final = ("admit", "recover")


def request_id(device_raw: bytes, kind: str, person: bytes | None) -> bytes:
    """What holders approve (PROTOCOL.md 19.2): a device's signed record, what it
    asks (admission, or recovering `person`), hashed under `covey/v1/recreq`."""
    data = encoding.encode([device_raw, kind, person or b""])
    return crypto.blake2b(data, crypto.HashDomain.RECOVERY_REQUEST)


def _person_field(body: dict[str, Any], kind: str) -> bytes | None:
    """A request's person: 16 bytes for a recovery, empty for an admission."""
    person = fields.get_bytes(body, "person", max_len=PERSON_BYTES)
    if (kind == "recover") != (len(person) == PERSON_BYTES) or len(person) not in (0, 16):
        raise MalformedMessage("a recovery names a person (16 bytes), an admission none")
    return person or None


@dataclass(frozen=True, slots=True)
class Approve:
    """A holder's approval of a request (PROTOCOL.md 19.2); for a recovery, it also
    records that the holder released its share to the requesting device."""

    KIND: ClassVar[str] = "approve"
    dealing: bytes
    request: bytes
    kind: RequestKind
    #: The person a recovery brings back (None: an admission).
    person: bytes | None

    def to_wire(self) -> Any:
        return {
            "dealing": self.dealing,
            "kind": self.kind,
            "person": self.person or b"",
            "request": self.request,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("dealing", "kind", "person", "request"), what="approve")
        kind = _choice(body, "kind", REQUEST_KINDS)
        return cls(
            fields.get_bytes(body, "dealing", size=ID_BYTES),
            fields.get_bytes(body, "request", size=ID_BYTES),
            kind,
            _person_field(body, kind),
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """An admission or a recovery announced (PROTOCOL.md 19.3): pending until a
    member completes it after the veto window, or it is vetoed."""

    KIND: ClassVar[str] = "claim"
    kind: RequestKind
    #: The requesting device's signed record.
    device: DeviceRecord
    device_raw: bytes
    person: bytes | None
    dealing: bytes
    #: The approve ops it rests on: sorted, once each.
    approvals: tuple[bytes, ...]
    #: A recovery's paper shares, by slot index, as the claimant says: sorted, once each.
    paper: tuple[int, ...]

    @property
    def request(self) -> bytes:
        return request_id(self.device_raw, self.kind, self.person)

    def to_wire(self) -> Any:
        return {
            "approvals": list(self.approvals),
            "dealing": self.dealing,
            "device": self.device_raw,
            "kind": self.kind,
            "paper": list(self.paper),
            "person": self.person or b"",
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(
            value, ("approvals", "dealing", "device", "kind", "paper", "person"), what="claim"
        )
        kind = _choice(body, "kind", REQUEST_KINDS)
        approvals = body["approvals"]
        if (
            type(approvals) is not list
            or len(approvals) > MAX_SLOTS
            or not all(type(a) is bytes and len(a) == ID_BYTES for a in approvals)
            or approvals != sorted(set(approvals))
        ):
            raise MalformedMessage("a claim lists at most 16 approvals, sorted, once each")
        paper = body["paper"]
        if (
            type(paper) is not list
            or not all(type(p) is int and 0 <= p < MAX_SLOTS for p in paper)
            or paper != sorted(set(paper))
            or (kind == "admit" and paper)
        ):
            raise MalformedMessage("a recovery lists its paper slots, sorted, once each")
        device, raw = _record(body, "device")
        return cls(
            kind,
            device,
            raw,
            _person_field(body, kind),
            fields.get_bytes(body, "dealing", size=ID_BYTES),
            tuple(approvals),
            tuple(paper),
        )


@dataclass(frozen=True, slots=True)
class Witness:
    """A member saw a claim pending for the whole veto window, by its own clock."""

    KIND: ClassVar[str] = "witness"
    claim: bytes

    def to_wire(self) -> Any:
        return {"claim": self.claim}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("claim",), what="witness")
        return cls(fields.get_bytes(body, "claim", size=ID_BYTES))


@dataclass(frozen=True, slots=True)
class Veto:
    """Stops a pending claim: a device of the person a recovery replaces, or an admin
    for an admission (`kind` says which, so the rule table knows what it needs)."""

    KIND: ClassVar[str] = "veto"
    claim: bytes
    kind: RequestKind

    def to_wire(self) -> Any:
        return {"claim": self.claim, "kind": self.kind}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("claim", "kind"), what="veto")
        return cls(
            fields.get_bytes(body, "claim", size=ID_BYTES), _choice(body, "kind", REQUEST_KINDS)
        )


@dataclass(frozen=True, slots=True)
class Complete:
    """A claim completed (PROTOCOL.md 19.5): the device is added with `role` (for a
    recovery, in place of every member device of the person), in a new epoch.

    `replaced` names the person's member devices in the op's causal past (a
    recovery; none for an admission): the completion revokes each as a
    removal does under rule 3, so what a lost device signs concurrently
    with it is vetoed (review of claims, F3).
    """

    KIND: ClassVar[str] = "complete"
    claim: bytes
    #: The claim's device record, again (so the op says whom it grants to).
    device: DeviceRecord
    device_raw: bytes
    role: Role
    rotation: Rotation
    links: Links
    #: Sorted, once each, at most MAX_REPLACED.
    replaced: tuple[bytes, ...] = ()

    @property
    def target(self) -> bytes:
        return self.device.device_id.raw

    def to_wire(self) -> Any:
        return {
            "claim": self.claim,
            "device": self.device_raw,
            "hist": links_to_wire(self.links),
            "out": list(self.replaced),
            "role": self.role,
            "rot": self.rotation.to_wire(),
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(
            value, ("claim", "device", "hist", "out", "role", "rot"), what="complete"
        )
        device, raw = _record(body, "device")
        out = body["out"]
        if (
            type(out) is not list
            or len(out) > MAX_REPLACED
            or not all(type(d) is bytes and len(d) == ID_BYTES for d in out)
            or out != sorted(set(out))
        ):
            raise MalformedMessage(
                f"a completion names at most {MAX_REPLACED} replaced devices, sorted, once each"
            )
        return cls(
            fields.get_bytes(body, "claim", size=ID_BYTES),
            device,
            raw,
            _choice(body, "role", ROLES),
            Rotation.from_wire(body["rot"]),
            links_from_wire(body["hist"]),
            tuple(out),
        )


Body: TypeAlias = (
    Genesis
    | Add
    | Remove
    | SetRole
    | Rotate
    | SetPolicy
    | AddRelay
    | RemoveRelay
    | SetInbox
    | SetPerson
    | Deal
    | Approve
    | Claim
    | Witness
    | Veto
    | Complete
)
BODIES: Final[dict[str, type[Body]]] = {
    cls.KIND: cls
    for cls in (
        Genesis,
        Add,
        Remove,
        SetRole,
        Rotate,
        SetPolicy,
        AddRelay,
        RemoveRelay,
        SetInbox,
        SetPerson,
        Deal,
        Approve,
        Claim,
        Witness,
        Veto,
        Complete,
    )
}


def rotation_of(body: Body) -> Rotation | None:
    """The new epoch an op starts, if it starts one."""
    return getattr(body, "rotation", None)


def links_of(body: Body) -> Links:
    """The epochs an op that starts an epoch links back to (none for genesis)."""
    return getattr(body, "links", ())


@dataclass(frozen=True, slots=True)
class OpContent:
    """The body of an `op` envelope (what the author signs)."""

    TYPE: ClassVar[str] = "op"
    group: bytes
    parents: tuple[bytes, ...]
    seq: int
    time: int
    body: Body

    def to_wire(self) -> Any:
        return {
            "g": self.group,
            "k": self.body.KIND,
            "p": list(self.parents),
            "s": self.seq,
            "t": self.time,
            "b": self.body.to_wire(),
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        content = fields.as_map(value, ("g", "k", "p", "s", "t", "b"), what="op")
        kind = fields.get_str(content, "k", max_len=16)
        body_cls = BODIES.get(kind)
        if body_cls is None:
            raise MalformedMessage(f"unknown op kind {kind!r}")
        parents = content["p"]
        if type(parents) is not list or len(parents) > MAX_PARENTS:
            raise MalformedMessage(f"an op has at most {MAX_PARENTS} parents")
        previous = b""
        for parent in parents:
            if type(parent) is not bytes or len(parent) != ID_BYTES:
                raise MalformedMessage("parents must be 32-byte op IDs")
            if parent <= previous:
                raise MalformedMessage("parents must be sorted, once each")
            previous = parent
        if (kind == Genesis.KIND) != (not parents):
            raise MalformedMessage("genesis, and only genesis, has no parents")
        seq = fields.get_int(content, "s", min_value=1, max_value=MAX_SEQ)
        if kind == Genesis.KIND and seq != 1:
            raise MalformedMessage("genesis is its author's first op")
        return cls(
            group=fields.get_bytes(content, "g", size=ID_BYTES),
            parents=tuple(parents),
            seq=seq,
            time=fields.get_int(content, "t", min_value=0, max_value=MAX_TIME),
            body=body_cls.from_wire(content["b"]),
        )


@dataclass(frozen=True, eq=False, slots=True)
class Op:
    """A parsed op with its ID and the exact bytes it arrived in.

    Its signature is not necessarily checked yet: the log checks it once the
    author's key is known from the op's causal past. The content's most used
    parts are copied into fields of their own (they are read on every
    replay step).
    """

    id: bytes
    author: bytes
    content: OpContent
    #: The envelope's signed part, exactly as received (what the signature covers).
    signed: bytes
    signature: bytes
    #: The whole envelope, exactly as received.
    raw: bytes
    kind: str
    body: Body
    parents: tuple[bytes, ...]
    seq: int
    #: (target, what is taken: "all" or "admin") for each device the op takes
    #: rights away from: one for a remove or a demotion, each replaced device
    #: for a recovery's completion, none for the rest.
    revoked: tuple[tuple[bytes, Literal["all", "admin"]], ...]
    #: (target, the role given) if the op gives rights to a device.
    granted: tuple[bytes, Role] | None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Op({self.kind}, {self.id.hex()[:8]}, seq={self.seq})"


def parse_op(data: bytes) -> Op:
    """Parse an op envelope's structure (not its signature: the log checks that,
    once the author's key is known from the op's causal past)."""
    # Every value of an op is read against its schema below (exact types,
    # map keys in order: `fields`), so the generic type walk is skipped.
    type_, author, value, signed, signature = wire.read_envelope(data, walk_types=False)
    if type_ != OpContent.TYPE:
        raise MalformedMessage(f"expected an op, got a {type_!r} message")
    content = OpContent.from_wire(value)
    body = content.body
    # The decoded tree is not kept: the op lives as long as the log, and
    # those dozen lists per op only cost memory and garbage-collector scans
    # (about a tenth of a large merge, benchmarks/merge.py).
    revoked: tuple[tuple[bytes, Literal["all", "admin"]], ...] = ()
    granted: tuple[bytes, Role] | None = None
    if isinstance(body, Remove):
        revoked = ((body.target, "all"),)
    elif isinstance(body, SetRole):
        if body.role == "member":
            revoked = ((body.target, "admin"),)
        else:
            granted = (body.target, "admin")
    elif isinstance(body, (Add, Complete)):
        granted = (body.target, body.role)
        if isinstance(body, Complete):
            revoked = tuple((device, "all") for device in body.replaced)
    return Op(
        op_id(signed),
        author,
        content,
        signed,
        signature,
        bytes(data),
        body.KIND,
        body,
        content.parents,
        content.seq,
        revoked,
        granted,
    )


def sign_op(content: OpContent, author: bytes, seed: bytes) -> Op:
    """Sign `content` as `author` and return the op, parsed back from its bytes."""
    return parse_op(wire.seal_envelope(content, author, seed))
