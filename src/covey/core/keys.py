"""Epoch keys: made fresh for every membership change, wrapped for each member.

A rotation draws a 32-byte key from `rng`, commits to it, and wraps it with
crypto_box from the rotating device to each member's box key. The commitment
(BLAKE2b keyed with the epoch key, domain `covey/v1/epochc`) is
signed inside the op, so every recipient can check that the key it unwrapped
is the one the op names: a key that arrives any other way (a history link,
a re-wrap) is a claim checked against a commitment, never a fact by itself.

Cost: one crypto_box per member and nothing else per member (see
benchmarks/rotation.py).

History links: every op that starts an epoch carries, for each epoch it
directly follows, that epoch's key sealed under a key derived from the new
one (`seal_link`), so whoever holds a key can walk back to every earlier
one the chain reaches; `Group` decides what is linked and what is cut
(PROTOCOL.md section 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from covey.core import Rng, crypto
from covey.core.ops import Link, Rotation
from covey.errors import BadKeyWrap, DecryptionFailed, KeyUnavailable

EPOCH_KEY_BYTES: Final = 32


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
    return Rotation.of(commitment(key), wraps), key


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


def link_key(new_key: bytes, group_id: bytes) -> bytes:
    """The key an epoch's links are sealed under (BLAKE2b keyed by it, `covey/v1/histl`)."""
    return crypto.derive_key(new_key, crypto.HashDomain.HISTORY_LINK, group_id)


def _link_context(group_id: bytes, new_commitment: bytes, earlier: bytes) -> bytes:
    """What a link is bound to: the group, the new epoch (by its commitment), the earlier one.

    The new epoch's op ID cannot be bound (it is the hash of the op the link
    is in); its commitment names its key, which is fresh, as well.
    """
    return group_id + new_commitment + earlier


def seal_link(
    new_key: bytes, group_id: bytes, earlier: bytes, earlier_key: bytes, rng: Rng
) -> bytes:
    """`earlier_key` (of epoch `earlier`) sealed under the new epoch's key: LINK_BYTES."""
    context = _link_context(group_id, commitment(new_key), earlier)
    return crypto.aead_seal(link_key(new_key, group_id), earlier_key, context, rng)


def open_link(new_key: bytes, group_id: bytes, link: Link, expected: bytes) -> bytes:
    """The earlier epoch's key from a link, checked against that epoch's commitment.

    Raises BadKeyWrap if the link is a cut, does not open (altered, or made
    for another group, epoch or earlier epoch), or holds any key but the one
    `expected` commits to.
    """
    if link.cut:
        raise BadKeyWrap("that link is a cut: it carries no key")
    context = _link_context(group_id, commitment(new_key), link.epoch)
    try:
        key = crypto.aead_open(link_key(new_key, group_id), link.sealed, context)
    except DecryptionFailed as exc:
        raise BadKeyWrap("a history link does not open") from exc
    check_key(key, expected)
    return key
