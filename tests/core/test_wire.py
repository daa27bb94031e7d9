"""Signed envelopes: strict decoding, and no change to a valid one goes unnoticed."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import crypto, encoding, fields, wire
from covey.core.identity import DeviceId, DeviceRecord, create_identity, open_device_record
from covey.errors import (
    BadSignature,
    InvalidInput,
    MalformedMessage,
    UnknownDevice,
    UnknownMessageType,
    UnsupportedVersion,
)
from tests.conftest import NOW, SeededRng
from tests.strategies import values

#: What the wire layer may raise for bad input: all of it, and nothing else.
TYPED = InvalidInput


@dataclass(frozen=True)
class Note:
    """A tiny body type for these tests."""

    TYPE: ClassVar[str] = "note"
    text: str
    count: int

    def to_wire(self) -> Any:
        return {"text": self.text, "count": self.count}

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        body = fields.as_map(value, ("text", "count"))
        return cls(
            fields.get_str(body, "text", max_len=100),
            fields.get_int(body, "count", min_value=0, max_value=1000),
        )


ALICE = create_identity("alice", NOW, SeededRng("alice"))
BOB = create_identity("bob", NOW, SeededRng("bob"))
KEYS = {ALICE.device_id.raw: ALICE.record.signing_key, BOB.device_id.raw: BOB.record.signing_key}
ACCEPT = {Note.TYPE: Note}


def sign_note(note: Note, who=ALICE) -> bytes:
    return wire.seal_envelope(note, who.device_id.raw, who.secrets.signing_seed)


def open_note(data: bytes) -> wire.Envelope[Note]:
    return wire.open_envelope(data, ACCEPT, KEYS.get)


notes = st.builds(
    Note,
    st.text(max_size=100).filter(lambda t: t.isprintable() and unicodedata.is_normalized("NFC", t)),
    st.integers(0, 1000),
)


@given(notes)
def test_round_trip_keeps_exact_bytes(note: Note) -> None:
    data = sign_note(note)
    envelope = open_note(data)
    assert envelope.body == note
    assert envelope.author == ALICE.device_id.raw
    assert envelope.raw == data
    assert encoding.encode([envelope.signed, envelope.signature]) == data


@given(notes, st.data())
def test_any_one_bit_flip_is_caught(note: Note, data: st.DataObject) -> None:
    original = sign_note(note)
    bit = data.draw(st.integers(0, len(original) * 8 - 1), label="bit")
    mutated = bytearray(original)
    mutated[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(TYPED):
        open_note(bytes(mutated))


@given(notes, st.data())
def test_mutations_only_ever_give_a_typed_error(note: Note, data: st.DataObject) -> None:
    original = bytearray(sign_note(note))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate", "extend"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if kind == "replace":
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[at]))
        original[at] = byte
    elif kind == "insert":
        original.insert(at, data.draw(st.integers(0, 255)))
    elif kind == "delete":
        del original[at]
    elif kind == "truncate":
        del original[at:]
    else:
        original += data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises(TYPED):
        open_note(bytes(original))


@given(st.binary(max_size=512))
def test_arbitrary_bytes_give_a_typed_error(data: bytes) -> None:
    with pytest.raises(TYPED):
        open_note(data)


@given(values)
def test_arbitrary_structures_give_a_typed_error(value: object) -> None:
    """Well-formed msgpack of the wrong shape is refused as cleanly as garbage."""
    for data in (encoding.encode(value), encoding.encode([encoding.encode(value), b"\x00" * 64])):
        with pytest.raises(TYPED):
            open_note(data)


def forge_signed(fields_: list[Any], who=ALICE) -> bytes:
    signed = encoding.encode(fields_)
    signature = crypto.sign(who.secrets.signing_seed, crypto.SignDomain.ENVELOPE, signed)
    return encoding.encode([signed, signature])


def test_unsupported_version_is_refused_before_anything_else() -> None:
    data = forge_signed([2, "note", ALICE.device_id.raw, {"text": "x", "count": 1}])
    with pytest.raises(UnsupportedVersion):
        open_note(data)
    # Even a future version with a different shape is reported as a version problem.
    with pytest.raises(UnsupportedVersion):
        open_note(forge_signed([9, "anything", "else", 1, 2]))


def test_unknown_type_is_refused() -> None:
    data = forge_signed([1, "chat", ALICE.device_id.raw, {"text": "x", "count": 1}])
    with pytest.raises(UnknownMessageType):
        open_note(data)


def test_unknown_author_is_refused() -> None:
    stranger = create_identity("mallory", NOW, SeededRng("mallory"))
    with pytest.raises(UnknownDevice):
        open_note(sign_note(Note("hi", 1), who=stranger))


def test_signature_by_another_known_device_is_refused() -> None:
    # Bob signs, but the envelope names Alice as its author.
    data = forge_signed([1, "note", ALICE.device_id.raw, {"text": "x", "count": 1}], who=BOB)
    with pytest.raises(BadSignature):
        open_note(data)


def test_signature_without_the_domain_is_refused() -> None:
    import nacl.signing

    signed = encoding.encode([1, "note", ALICE.device_id.raw, {"text": "x", "count": 1}])
    bare = nacl.signing.SigningKey(ALICE.secrets.signing_seed).sign(signed).signature
    with pytest.raises(BadSignature):
        open_note(encoding.encode([signed, bare]))


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x"},
        {"text": "x", "count": 1, "extra": 2},
        {"text": 5, "count": 1},
        {"text": "x", "count": True},
        {"text": "x", "count": 1001},
        {"text": "x\x00", "count": 1},
        [1, 2],
    ],
)
def test_body_schema_errors_are_malformed(body: Any) -> None:
    with pytest.raises(MalformedMessage):
        open_note(forge_signed([1, "note", ALICE.device_id.raw, body]))


def test_device_record_is_self_signed() -> None:
    envelope = open_device_record(ALICE.record_bytes)
    assert envelope.body == ALICE.record
    assert DeviceId(envelope.author) == ALICE.device_id


def test_device_record_signed_by_another_key_is_refused() -> None:
    # Bob signs a record that carries Alice's keys, with Alice's ID as author.
    forged = wire.seal_envelope(ALICE.record, ALICE.device_id.raw, BOB.secrets.signing_seed)
    with pytest.raises(BadSignature):
        open_device_record(forged)
    # Bob signs Alice's record with his own ID as author: the ID does not match the key.
    forged = wire.seal_envelope(ALICE.record, BOB.device_id.raw, BOB.secrets.signing_seed)
    with pytest.raises(BadSignature):
        open_device_record(forged)


@given(st.data())
def test_device_record_bit_flips_are_caught(data: st.DataObject) -> None:
    original = ALICE.record_bytes
    bit = data.draw(st.integers(0, len(original) * 8 - 1))
    mutated = bytearray(original)
    mutated[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(TYPED):
        open_device_record(bytes(mutated))


def test_a_note_is_not_a_device_record() -> None:
    with pytest.raises(UnknownMessageType):
        open_device_record(sign_note(Note("x", 1)))
    assert isinstance(DeviceRecord.TYPE, str)
