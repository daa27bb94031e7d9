"""The keyring: the data key under a passphrase (Argon2id + SecretBox) or under nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from covey.core import crypto, keyring
from covey.errors import PassphraseRequired, StoreCorrupt, WrongPassphrase
from tests.conftest import SeededRng

# The smallest Argon2id cost libsodium allows, so the tests run fast; the
# defaults (moderate) are exercised by the CLI tests.
FAST = {"opslimit": crypto.ARGON2_OPSLIMIT_RANGE[0], "memlimit": crypto.ARGON2_MEMLIMIT_RANGE[0]}


def test_passphrase_round_trip() -> None:
    ring, key = keyring.new_keyring("correct horse", SeededRng(), **FAST)
    assert ring.kind == "passphrase"
    assert key not in ring.wrapped
    assert keyring.unlock(ring, "correct horse") == key


def test_wrong_or_missing_passphrase() -> None:
    ring, _ = keyring.new_keyring("correct horse", SeededRng(), **FAST)
    with pytest.raises(WrongPassphrase):
        keyring.unlock(ring, "correct horsf")
    with pytest.raises(PassphraseRequired):
        keyring.unlock(ring, None)
    with pytest.raises(PassphraseRequired):
        keyring.unlock(ring, "")


def test_no_passphrase_keeps_the_key_bare() -> None:
    ring, key = keyring.new_keyring(None, SeededRng())
    assert ring.kind == "none"
    assert keyring.unlock(ring, None) == key
    assert keyring.unlock(ring, "ignored") == key
    assert keyring.new_keyring("", SeededRng())[0].kind == "none"


def test_passphrases_are_normalised() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    ring, key = keyring.new_keyring(composed, SeededRng(), **FAST)
    assert keyring.unlock(ring, decomposed) == key


@pytest.mark.parametrize(
    "change",
    [
        {"opslimit": 0},
        {"opslimit": 1000},
        {"memlimit": 1 << 40},
        {"memlimit": 1},
        {"salt": b"short"},
        {"kind": "rot13"},
    ],
)
def test_tampered_parameters_are_refused_without_running_argon2(change: dict) -> None:
    ring, _ = keyring.new_keyring("pw", SeededRng(), **FAST)
    with pytest.raises(StoreCorrupt):
        keyring.unlock(replace(ring, **change), "pw")


def test_secrets_are_bound_to_their_name() -> None:
    rng = SeededRng()
    key = rng(32)
    sealed = keyring.seal_secret(key, "device", b"private", rng)
    assert keyring.open_secret(key, "device", sealed) == b"private"
    with pytest.raises(StoreCorrupt):
        keyring.open_secret(key, "group:x", sealed)
    with pytest.raises(StoreCorrupt):
        keyring.open_secret(rng(32), "device", sealed)


def test_repr_shows_no_key() -> None:
    ring, key = keyring.new_keyring(None, SeededRng())
    assert key.hex() not in repr(ring)
    assert repr(key) not in repr(ring)
