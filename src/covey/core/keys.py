"""Epoch keys: made fresh for every membership change, wrapped for each member.

A rotation draws a 32-byte key from `rng`, commits to it, and wraps it with
crypto_box from the rotating device to each member's box key. The commitment
(BLAKE2b keyed with the epoch key, domain `covey/v1/epochc`) is
signed inside the op, so every recipient can check that the key it unwrapped
is the one the op names: a key that arrives any other way (a history bundle,
a re-wrap) is a claim checked against a commitment, never a fact by itself.

Cost: one crypto_box per member and nothing else per member (see
benchmarks/rotation.py).

History bundles carry earlier epoch keys to a new member of a `shared` group,
sealed under a key derived from the new epoch key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from covey.core import Rng, crypto, encoding
from covey.core.ops import Rotation
from covey.errors import BadKeyWrap, DecryptionFailed, KeyUnavailable, MalformedMessage

EPOCH_KEY_BYTES: Final = 32
#: Earlier epochs one history bundle can carry.
MAX_HISTORY_EPOCHS: Final = 10_000


def commitment(key: bytes) -> bytes:
    """The public commitment to an epoch key (a PRF of the key: reveals nothing of it)."""
    return crypto.derive_key(key, crypto.HashDomain.EPOCH_COMMIT)


def new_rotation(
    sender_box_secret: bytes, recipients: Mapping[bytes, bytes], rng: Rng
) -> tuple[Rotation, bytes]:
    """A fresh epoch key wrapped for `recipients` (device ID -> box public key)."""
    key = rng(EPOCH_KEY_BYTES)
    wraps = tuple(
        (device, crypto.box_wrap(sender_box_secret, recipients[device], key, rng))
        for device in sorted(recipients)
    )
    return Rotation(commitment(key), wraps), key


def unwrap(
    rotation: Rotation,
    me: bytes,
    my_box_secret: bytes,
    sender_box_public: bytes,
) -> bytes:
    """This device's copy of the rotation's key, checked against its commitment."""
    wrapped = rotation.wrap_for(me)
    if wrapped is None:
        raise KeyUnavailable("this device is not a recipient of that epoch")
    try:
        key = crypto.box_unwrap(my_box_secret, sender_box_public, wrapped)
    except DecryptionFailed as exc:
        raise BadKeyWrap() from exc
    check_key(key, rotation.commitment)
    return key


def check_key(key: bytes, expected: bytes) -> None:
    """Raise BadKeyWrap unless `key` is the key `expected` commits to."""
    if len(key) != EPOCH_KEY_BYTES or not crypto.equal(commitment(key), expected):
        raise BadKeyWrap()


def seal_history(new_key: bytes, group_id: bytes, keys: Mapping[bytes, bytes], rng: Rng) -> bytes:
    """Earlier epoch keys (epoch ID -> key), sealed under the new epoch's key."""
    if not keys:
        return b""
    payload = encoding.encode([[epoch, keys[epoch]] for epoch in sorted(keys)])
    history_key = crypto.derive_key(new_key, crypto.HashDomain.HISTORY_KEY, group_id)
    return crypto.aead_seal(history_key, payload, group_id, rng)


def open_history(
    new_key: bytes,
    group_id: bytes,
    sealed: bytes,
    commitment_of: Callable[[bytes], bytes | None],
) -> dict[bytes, bytes]:
    """The keys in a history bundle whose epochs are known and whose commitments match.

    A key for an unknown epoch, or one that does not match its epoch's
    commitment, is left out: a bundle can only hand over real keys.
    """
    if not sealed:
        return {}
    history_key = crypto.derive_key(new_key, crypto.HashDomain.HISTORY_KEY, group_id)
    try:
        value = encoding.decode(crypto.aead_open(history_key, sealed, group_id))
    except (DecryptionFailed, MalformedMessage) as exc:
        raise BadKeyWrap("the history bundle does not open") from exc
    if not isinstance(value, list) or len(value) > MAX_HISTORY_EPOCHS:
        raise BadKeyWrap("the history bundle is malformed")
    keys: dict[bytes, bytes] = {}
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise BadKeyWrap("the history bundle is malformed")
        if not all(isinstance(x, bytes) for x in item):
            raise BadKeyWrap("the history bundle is malformed")
        epoch, key = item
        expected = commitment_of(epoch)
        if expected is None:
            continue
        try:
            check_key(key, expected)
        except BadKeyWrap:
            continue
        keys[epoch] = key
    return keys
