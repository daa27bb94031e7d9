"""Device identity: IDs, safety words, the record and its secrets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shamir_mnemonic.wordlist import WORDLIST

from covey.core import identity, words
from covey.core.identity import DeviceId, create_identity
from covey.errors import InvalidArgument
from tests.conftest import NOW, SeededRng

ids = st.binary(min_size=32, max_size=32).map(DeviceId)


@given(ids)
def test_device_id_renders_and_parses_back(device_id: DeviceId) -> None:
    text = str(device_id)
    assert text.startswith("cv1-")
    groups = text[len("cv1-") :].split("-")
    assert [len(g) for g in groups] == [4] * 13
    assert DeviceId.parse(text) == device_id
    assert DeviceId.parse(text.upper().replace("-", "")[:2] + "1-" + text[4:].upper()) == device_id
    assert device_id.short == text[:13]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cv2-aaaa",
        "cv1-" + "a" * 51,
        "cv1-" + "a" * 53,
        "cv1-" + "1" * 52,  # '1' is not in the base32 alphabet
        "cv1-" + "a" * 51 + "b",  # non-zero padding bits: a second spelling
    ],
)
def test_bad_device_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        DeviceId.parse(text)


def test_device_id_is_blake2b_of_the_signing_key_only() -> None:
    a = create_identity("a", NOW, SeededRng("a"))
    assert a.device_id == DeviceId.of(a.record.signing_key)
    assert a.device_id.raw != a.record.signing_key


def test_creation_is_deterministic_given_rng_and_now() -> None:
    a = create_identity("laptop", NOW, SeededRng("same"))
    b = create_identity("laptop", NOW, SeededRng("same"))
    c = create_identity("laptop", NOW, SeededRng("other"))
    assert a.record_bytes == b.record_bytes
    assert a.device_id != c.device_id


def test_three_distinct_keys() -> None:
    record = create_identity("a", NOW, SeededRng()).record
    assert len({record.signing_key, record.box_key, record.channel_key}) == 3


@given(st.binary(min_size=32, max_size=32))
def test_safety_words_are_eight_list_words_that_encode_80_bits(fingerprint: bytes) -> None:
    chosen = words.safety_words(fingerprint)
    assert len(chosen) == 8
    assert all(word in WORDLIST for word in chosen)
    assert words.words_to_prefix(chosen) == fingerprint[:10]
    assert words.words_match(fingerprint, chosen)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 79))
def test_any_bit_of_the_first_80_changes_the_words(fingerprint: bytes, bit: int) -> None:
    other = bytearray(fingerprint)
    other[bit // 8] ^= 0x80 >> (bit % 8)
    assert words.safety_words(fingerprint) != words.safety_words(bytes(other))
    assert not words.words_match(bytes(other), words.safety_words(fingerprint))


def test_fingerprint_covers_every_public_key() -> None:
    record = create_identity("a", NOW, SeededRng()).record
    from dataclasses import replace

    for field in ("signing_key", "box_key", "channel_key"):
        changed = replace(record, **{field: bytes(32)})
        assert changed.fingerprint != record.fingerprint
    # The name and time are not part of it: they are signed, not verified aloud.
    assert replace(record, name="other").fingerprint == record.fingerprint


def test_words_typed_by_people_are_checked() -> None:
    with pytest.raises(InvalidArgument):
        words.words_to_prefix(["academic"] * 7)
    with pytest.raises(InvalidArgument):
        words.words_to_prefix(["academic"] * 7 + ["notaword"])
    assert words.words_to_prefix([" Academic "] * 8) == bytes(10)


def test_secrets_match_their_record_only() -> None:
    a = create_identity("a", NOW, SeededRng("a"))
    b = create_identity("b", NOW, SeededRng("b"))
    assert a.secrets.matches(a.record)
    assert not a.secrets.matches(b.record)
    assert identity.DeviceSecrets.from_bytes(a.secrets.to_bytes()) == a.secrets
    assert "redacted" in repr(a.secrets)
    assert a.secrets.signing_seed.hex() not in repr(a)


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "bad\nname", "tab\there"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        create_identity(name, NOW, SeededRng())


def test_names_are_trimmed() -> None:
    assert create_identity("  phone ", NOW, SeededRng()).record.name == "phone"


# Points of small order on Curve25519 (in the u-coordinate form X25519 uses):
# 0, 1, and the order-8 points. DH with any of them gives a known value.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
]


@pytest.mark.parametrize("key", LOW_ORDER)
@pytest.mark.parametrize("which", ["box_key", "channel_key"])
def test_a_record_with_a_low_order_key_is_refused(key: bytes, which: str) -> None:
    """Found by review: a record whose channel key is all zeros stopped every
    member's node (discovery's X25519 with it failed). It never decodes now."""
    import dataclasses

    from covey.core import wire
    from covey.errors import MalformedMessage

    honest = create_identity("mallory", NOW, SeededRng("m"))
    bad = dataclasses.replace(honest.record, **{which: key})
    data = wire.seal_envelope(bad, bad.device_id.raw, honest.secrets.signing_seed)
    with pytest.raises(MalformedMessage):
        identity.open_device_record(data)
