"""covey's crypto recipes against published vectors, and their domain separation."""

from __future__ import annotations

import pytest

from covey.core import crypto
from covey.errors import BadSignature, DecryptionFailed
from tests.conftest import SeededRng


def test_ed25519_public_key_rfc8032_test_1() -> None:
    # RFC 8032, section 7.1, TEST 1.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert crypto.signing_public_key(seed) == public


def test_x25519_public_key_rfc7748() -> None:
    # RFC 7748, section 6.1: Alice's key pair.
    secret = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert crypto.x25519_public_key(secret) == public


def test_blake2b_rfc7693_abc() -> None:
    # RFC 7693, appendix A: BLAKE2b-512("abc"), no key and no personalisation.
    import nacl.hash

    expected = (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
    assert nacl.hash.blake2b(b"abc", digest_size=64).decode() == expected


def test_domains_are_distinct_and_well_formed() -> None:
    hashes = [d.value for d in crypto.HashDomain]
    signatures = [d.value for d in crypto.SignDomain]
    everything = hashes + signatures
    assert len(set(everything)) == len(everything)
    assert all(len(v) <= 16 for v in hashes)  # BLAKE2b's personalisation size
    assert all(v.startswith(b"covey/v1/") and b"\x00" not in v for v in everything)


def test_hash_domains_separate() -> None:
    a = crypto.blake2b(b"data", crypto.HashDomain.DEVICE_ID)
    b = crypto.blake2b(b"data", crypto.HashDomain.FINGERPRINT)
    assert a != b


def test_signature_verifies_only_in_its_domain() -> None:
    seed = SeededRng()(32)
    public = crypto.signing_public_key(seed)
    signature = crypto.sign(seed, crypto.SignDomain.ENVELOPE, b"message")
    crypto.verify(public, crypto.SignDomain.ENVELOPE, b"message", signature)
    with pytest.raises(BadSignature):
        crypto.verify(public, crypto.SignDomain.ENVELOPE, b"\x00message", signature)
    with pytest.raises(BadSignature):
        crypto.verify(public, crypto.SignDomain.ENVELOPE, b"messagf", signature)
    with pytest.raises(BadSignature):
        crypto.verify(public[:31], crypto.SignDomain.ENVELOPE, b"message", signature)
    with pytest.raises(BadSignature):
        crypto.verify(bytes(32), crypto.SignDomain.ENVELOPE, b"message", signature)


def test_non_canonical_signature_is_refused() -> None:
    # Adding the group order L to S gives a second encoding of the same
    # signature; libsodium must refuse it (no malleability).
    seed = SeededRng()(32)
    public = crypto.signing_public_key(seed)
    signature = crypto.sign(seed, crypto.SignDomain.ENVELOPE, b"m")
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(signature[32:], "little") + order
    assert s < 2**256
    mauled = signature[:32] + s.to_bytes(32, "little")
    with pytest.raises(BadSignature):
        crypto.verify(public, crypto.SignDomain.ENVELOPE, b"m", mauled)


def test_secretbox_round_trip_and_tamper() -> None:
    rng = SeededRng()
    key = rng(32)
    sealed = crypto.secretbox_seal(key, b"secret", rng)
    assert len(sealed) == len(b"secret") + crypto.SECRETBOX_OVERHEAD
    assert crypto.secretbox_open(key, sealed) == b"secret"
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            crypto.secretbox_open(key, bytes(tampered))
    with pytest.raises(DecryptionFailed):
        crypto.secretbox_open(rng(32), sealed)
    with pytest.raises(DecryptionFailed):
        crypto.secretbox_open(key, sealed[:10])


def test_equal_is_exact() -> None:
    assert crypto.equal(b"abc", b"abc")
    assert not crypto.equal(b"abc", b"abd")
    assert not crypto.equal(b"abc", b"abcd")
