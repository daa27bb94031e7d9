"""How a device's secrets are protected at rest.

Every secret covey stores (the device's private keys now; group keys later)
is sealed with SecretBox under one random 32-byte data key. The data key is
itself either

* wrapped under a key-encryption key derived from the user's passphrase with
  Argon2id (kind "passphrase"), or
* stored as it is (kind "none"): then the secrets are protected only by the
  store's file permissions, and covey says so.

Changing the passphrase makes a new data key and re-seals every secret under
it (see covey.store), so a data key that once sat on disk unwrapped is never
the one protecting secrets after a passphrase is set.

Each sealed secret carries its own name inside the ciphertext, so a sealed
value copied to another name's place does not open.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from covey.core import Rng, crypto, encoding
from covey.errors import (
    DecryptionFailed,
    MalformedMessage,
    PassphraseRequired,
    StoreCorrupt,
    WrongPassphrase,
)

DATA_KEY_BYTES: Final = crypto.KEY_BYTES


@dataclass(frozen=True, repr=False)
class Keyring:
    """The stored description of how the data key is protected."""

    kind: Literal["passphrase", "none"]
    #: secretbox(KEK, data key) for "passphrase"; the bare data key for "none".
    wrapped: bytes
    salt: bytes = b""
    opslimit: int = 0
    memlimit: int = 0

    def __repr__(self) -> str:
        return f"Keyring(kind={self.kind!r})"


def normalize_passphrase(passphrase: str) -> str:
    """NFKC, so the same passphrase typed on two systems gives the same key."""
    return unicodedata.normalize("NFKC", passphrase)


def new_keyring(
    passphrase: str | None,
    rng: Rng,
    *,
    opslimit: int = crypto.ARGON2_OPSLIMIT,
    memlimit: int = crypto.ARGON2_MEMLIMIT,
) -> tuple[Keyring, bytes]:
    """A fresh data key and the keyring protecting it; empty passphrase means none."""
    data_key = rng(DATA_KEY_BYTES)
    return protect(data_key, passphrase, rng, opslimit=opslimit, memlimit=memlimit), data_key


def protect(
    data_key: bytes,
    passphrase: str | None,
    rng: Rng,
    *,
    opslimit: int = crypto.ARGON2_OPSLIMIT,
    memlimit: int = crypto.ARGON2_MEMLIMIT,
) -> Keyring:
    """The keyring that protects `data_key` with `passphrase` (or with nothing)."""
    if not passphrase:
        return Keyring(kind="none", wrapped=data_key)
    salt = rng(crypto.SALT_BYTES)
    kek = crypto.passphrase_key(normalize_passphrase(passphrase), salt, opslimit, memlimit)
    return Keyring(
        kind="passphrase",
        wrapped=crypto.secretbox_seal(kek, data_key, rng),
        salt=salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )


def unlock(keyring: Keyring, passphrase: str | None) -> bytes:
    """The data key, or WrongPassphrase / PassphraseRequired / StoreCorrupt."""
    if keyring.kind == "none":
        if len(keyring.wrapped) != DATA_KEY_BYTES:
            raise StoreCorrupt("the store's data key is damaged")
        return keyring.wrapped
    if keyring.kind != "passphrase":
        raise StoreCorrupt("the store's keyring is of an unknown kind")
    low_ops, high_ops = crypto.ARGON2_OPSLIMIT_RANGE
    low_mem, high_mem = crypto.ARGON2_MEMLIMIT_RANGE
    if (
        len(keyring.salt) != crypto.SALT_BYTES
        or not low_ops <= keyring.opslimit <= high_ops
        or not low_mem <= keyring.memlimit <= high_mem
    ):
        raise StoreCorrupt("the store's passphrase parameters are out of range")
    if not passphrase:
        raise PassphraseRequired()
    kek = crypto.passphrase_key(
        normalize_passphrase(passphrase), keyring.salt, keyring.opslimit, keyring.memlimit
    )
    try:
        data_key = crypto.secretbox_open(kek, keyring.wrapped)
    except DecryptionFailed as exc:
        raise WrongPassphrase() from exc
    if len(data_key) != DATA_KEY_BYTES:
        raise StoreCorrupt("the store's data key is damaged")
    return data_key


def seal_secret(data_key: bytes, name: str, secret: bytes, rng: Rng) -> bytes:
    """Seal `secret` under the data key, bound to its `name`."""
    return crypto.secretbox_seal(data_key, encoding.encode([name, secret]), rng)


def open_secret(data_key: bytes, name: str, sealed: bytes) -> bytes:
    """Open a secret sealed by `seal_secret` under the same name."""
    try:
        value = encoding.decode(crypto.secretbox_open(data_key, sealed))
    except (DecryptionFailed, MalformedMessage) as exc:
        raise StoreCorrupt(f"the stored secret {name[:40]!r} does not open") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != name
        or not isinstance(value[1], bytes)
    ):
        raise StoreCorrupt(f"the stored secret {name[:40]!r} is not the one asked for")
    return value[1]
