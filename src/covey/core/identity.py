"""Device identity: three key pairs, a self-signed device record, its ID.

A device has

* an Ed25519 signing key: it signs everything the device says;
* an X25519 "box" key: others wrap group keys for it (crypto_box);
* a separate X25519 "channel" key: a dialer seals its channel proof to it,
  and pairs of devices derive their discovery keys from it.

Keeping the three apart means a compromise of how one is used (say, a bug in
the channel code) does not hand over the others' uses.

The device record (name, the three public keys, creation time) is an envelope
signed by the signing key itself. The device ID is BLAKE2b-256 of the signing
public key under its own domain, rendered as `cv1-` and 52 base32 characters
in groups of four. The fingerprint, from which safety words are made, covers
all three public keys, so reading out the words checks every key at once.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Self

from covey.core import Rng, crypto, encoding, fields, wire, words
from covey.errors import BadSignature, InvalidArgument, MalformedMessage

ID_PREFIX: Final = "cv1-"
ID_GROUP: Final = 4
#: Device names: what a person calls the device ("Ana's laptop").
MAX_NAME_LEN: Final = 64
#: Creation times are Unix seconds; refuse anything before 2020 or past 2200.
MIN_TIME: Final = 1_577_836_800
MAX_TIME: Final = 7_258_118_400


@dataclass(frozen=True, order=True)
class DeviceId:
    """A device's ID: BLAKE2b-256 of its Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != wire.AUTHOR_BYTES:
            raise ValueError("a device ID is 32 bytes")

    @classmethod
    def of(cls, signing_key: bytes) -> DeviceId:
        """The ID of the device with this Ed25519 public key."""
        return cls(crypto.blake2b(signing_key, crypto.HashDomain.DEVICE_ID))

    def __str__(self) -> str:
        text = base64.b32encode(self.raw).decode("ascii").rstrip("=").lower()
        return ID_PREFIX + "-".join(text[i : i + ID_GROUP] for i in range(0, len(text), ID_GROUP))

    @property
    def short(self) -> str:
        """The first eight characters, for display only: not unique."""
        return str(self)[: len(ID_PREFIX) + 9]

    @classmethod
    def parse(cls, text: str) -> DeviceId:
        """Parse a rendered device ID (case and dashes are forgiven)."""
        cleaned = text.strip().lower()
        if not cleaned.startswith(ID_PREFIX):
            raise InvalidArgument(f"a device ID starts with {ID_PREFIX!r}")
        body = cleaned[len(ID_PREFIX) :].replace("-", "")
        if not body.isascii():
            raise InvalidArgument("a device ID uses the letters a-z and digits 2-7")
        if len(body) != 52:
            raise InvalidArgument("a device ID has 52 characters after its prefix")
        try:
            raw = base64.b32decode(body.upper() + "====")
        except ValueError as exc:
            raise InvalidArgument("a device ID uses the letters a-z and digits 2-7") from exc
        device_id = cls(raw)
        if str(device_id).replace("-", "") != ID_PREFIX.replace("-", "") + body:
            raise InvalidArgument("that is not a canonical device ID")
        return device_id


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What a device says about itself, signed by its own signing key."""

    TYPE: ClassVar[str] = "device"

    name: str
    signing_key: bytes
    box_key: bytes
    channel_key: bytes
    created: int
    #: Derived once: the merge asks for it at every add it replays.
    device_id: DeviceId = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_id", DeviceId.of(self.signing_key))

    @property
    def fingerprint(self) -> bytes:
        """BLAKE2b-256 over all three public keys, for safety words."""
        keys = encoding.encode([self.signing_key, self.box_key, self.channel_key])
        return crypto.blake2b(keys, crypto.HashDomain.FINGERPRINT)

    @property
    def safety_words(self) -> list[str]:
        return words.safety_words(self.fingerprint)

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sign": self.signing_key,
            "box": self.box_key,
            "chan": self.channel_key,
            "created": self.created,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("name", "sign", "box", "chan", "created"))
        record = cls(
            name=fields.get_str(body, "name", min_len=1, max_len=MAX_NAME_LEN),
            signing_key=fields.get_bytes(body, "sign", size=crypto.KEY_BYTES),
            box_key=fields.get_bytes(body, "box", size=crypto.KEY_BYTES),
            channel_key=fields.get_bytes(body, "chan", size=crypto.KEY_BYTES),
            created=fields.get_int(body, "created", min_value=MIN_TIME, max_value=MAX_TIME),
        )
        # A low-order key would make every DH with it fail (or, worse, agree
        # on a known value): such a record is refused wherever it appears.
        if not (crypto.x25519_usable(record.box_key) and crypto.x25519_usable(record.channel_key)):
            raise MalformedMessage("a device record holds a key of low order")
        return record


@dataclass(frozen=True, repr=False)
class DeviceSecrets:
    """The three private keys of a device. Never logged, never printed."""

    signing_seed: bytes
    box_secret: bytes
    channel_secret: bytes

    def __repr__(self) -> str:
        return "DeviceSecrets(<redacted>)"

    def to_bytes(self) -> bytes:
        return encoding.encode([self.signing_seed, self.box_secret, self.channel_secret])

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceSecrets:
        value = encoding.decode(data)
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, bytes) and len(v) == crypto.KEY_BYTES for v in value)
        ):
            raise MalformedMessage("device secrets are malformed")
        return cls(*value)

    def matches(self, record: DeviceRecord) -> bool:
        """Whether these private keys belong to the public keys in `record`."""
        return (
            crypto.equal(crypto.signing_public_key(self.signing_seed), record.signing_key)
            and crypto.equal(crypto.x25519_public_key(self.box_secret), record.box_key)
            and crypto.equal(crypto.x25519_public_key(self.channel_secret), record.channel_key)
        )


@dataclass(frozen=True)
class Identity:
    """This device: its signed record (as bytes and decoded) and its secrets."""

    record_bytes: bytes
    record: DeviceRecord
    secrets: DeviceSecrets

    @property
    def device_id(self) -> DeviceId:
        return self.record.device_id


def validate_name(name: str, what: str = "a device name") -> str:
    """A device (or group: `what`) name as the user typed it, or InvalidArgument saying why not."""
    try:
        name = unicodedata.normalize("NFC", name.strip())
    except UnicodeError as exc:
        raise InvalidArgument(f"{what} must be valid text") from exc
    try:
        fields.get_str({"name": name}, "name", min_len=1, max_len=MAX_NAME_LEN)
    except MalformedMessage as exc:
        raise InvalidArgument(f"{what} is 1 to {MAX_NAME_LEN} printable characters") from exc
    return name


def create_identity(name: str, now: int, rng: Rng) -> Identity:
    """A new device identity named `name`, created at Unix time `now`."""
    secrets = DeviceSecrets(
        signing_seed=rng(crypto.KEY_BYTES),
        box_secret=crypto.new_x25519_secret(rng),
        channel_secret=crypto.new_x25519_secret(rng),
    )
    record = DeviceRecord(
        name=validate_name(name),
        signing_key=crypto.signing_public_key(secrets.signing_seed),
        box_key=crypto.x25519_public_key(secrets.box_secret),
        channel_key=crypto.x25519_public_key(secrets.channel_secret),
        created=now,
    )
    record_bytes = wire.seal_envelope(record, record.device_id.raw, secrets.signing_seed)
    return Identity(record_bytes, record, secrets)


def open_device_record(data: bytes) -> wire.Envelope[DeviceRecord]:
    """Decode a self-signed device record and check its signature.

    The author field must be the ID of the signing key inside the record, and
    that key must have signed it.
    """
    unverified = wire.parse_envelope(data)
    accept = {DeviceRecord.TYPE: DeviceRecord}
    if unverified.type != DeviceRecord.TYPE:
        # Let verify_envelope raise the typed error for the wrong type.
        return wire.verify_envelope(unverified, accept, None)
    record = DeviceRecord.from_wire(unverified.body)
    if not crypto.equal(DeviceId.of(record.signing_key).raw, unverified.author):
        raise BadSignature("the device record is not signed by its own key")
    return wire.verify_envelope(unverified, accept, record.signing_key)
