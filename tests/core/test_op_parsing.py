"""Parsing ops without the generic type walk accepts exactly what the walk accepted.

`ops.parse_op` decodes an op's envelope with `walk_types=False` and relies on
the op schema (`fields`: exact types, map keys in canonical order) to refuse
floats, timestamps, unsorted or repeated keys and anything out of shape. The
oracle here is the strict path every other message takes: the walked
`encoding.decode`, then the same schema. Mutated ops, re-signed so that only
their structure can be wrong, must get the same answer from both.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import crypto, encoding, wire
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.ops import OpContent, parse_op
from covey.errors import InvalidInput, MalformedMessage, UnsupportedVersion
from tests.conftest import NOW, SeededRng
from tests.strategies import values

ALICE = create_identity("alice", NOW, SeededRng("alice"))
BOB = create_identity("bob", NOW, SeededRng("bob"))


def _every_kind() -> list[bytes]:
    rng = SeededRng("op-parsing")
    group = Group.create(ALICE, "family", "shared", NOW, rng)
    group.add(BOB.record_bytes, "member", NOW, rng)
    group.set_role(BOB.device_id.raw, "admin", NOW)
    group.set_policy("forward", NOW)
    group.rotate(NOW, rng)
    group.remove(BOB.device_id.raw, NOW, rng)
    return [op.raw for op in group.log.order]


OPS = _every_kind()

#: Values the canonical encoding refuses, or that no op field holds.
odd = st.one_of(
    st.floats(allow_nan=False),
    st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1)),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
    values,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if type(value) is list:
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    elif type(value) is dict:
        for key, item in value.items():
            found += _paths(item, (*path, key))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if type(value) is list:
        return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}


def _reorder(value: Any, path: tuple[Any, ...]) -> Any:
    """The map at `path` (if it is one) with its keys in reverse order."""
    if not path:
        if type(value) is dict and len(value) > 1:
            return dict(reversed(list(value.items())))
        return value
    head, rest = path[0], path[1:]
    if type(value) is list:
        return [_reorder(v, rest) if i == head else v for i, v in enumerate(value)]
    return {k: (_reorder(v, rest) if k == head else v) for k, v in value.items()}


def _resign(signed_value: Any) -> bytes:
    """An envelope of exactly these `signed` bytes (msgpack as given, not canonicalised)."""
    signed = msgpack.packb(signed_value, use_bin_type=True)
    signature = crypto.sign(ALICE.secrets.signing_seed, crypto.SignDomain.ENVELOPE, signed)
    return msgpack.packb([signed, signature], use_bin_type=True)


def _walked(raw: bytes) -> bool:
    """The oracle: the walked decode, then the op schema."""
    try:
        unverified = wire.parse_envelope(raw)
        if unverified.type != OpContent.TYPE:
            return False
        OpContent.from_wire(unverified.body)
    except InvalidInput:  # (malformed, or a version this covey does not speak)
        return False
    return True


def _parsed(raw: bytes) -> bool:
    try:
        parse_op(raw)
    except InvalidInput:
        return False
    return True


def _signed_value(raw: bytes) -> Any:
    return encoding.decode(wire.parse_envelope(raw).signed)


@pytest.mark.parametrize("raw", OPS, ids=lambda raw: parse_op(raw).kind)
def test_every_kind_of_op_parses_on_both_paths(raw: bytes) -> None:
    assert _parsed(raw)
    assert _walked(raw)


@settings(max_examples=400)
@given(st.sampled_from(OPS), st.data())
def test_a_replaced_value_gets_the_same_answer_on_both_paths(raw: bytes, data: Any) -> None:
    value = _signed_value(raw)
    path = data.draw(st.sampled_from(_paths(value)[1:]))
    mutated = _resign(_replace(value, path, data.draw(odd)))
    assert _parsed(mutated) == _walked(mutated)


def test_an_unsupported_version_is_refused_on_both_paths() -> None:
    """Found by the test above (a fresh random example in CI): the envelope's
    version replaced by 0 is refused on both paths, as UnsupportedVersion."""
    mutated = _resign(_replace(_signed_value(OPS[0]), (0,), 0))
    assert not _parsed(mutated)
    assert not _walked(mutated)
    with pytest.raises(UnsupportedVersion):
        parse_op(mutated)


@settings(max_examples=200)
@given(st.sampled_from(OPS), st.data())
def test_a_map_out_of_order_is_refused_on_both_paths(raw: bytes, data: Any) -> None:
    value = _signed_value(raw)
    maps = [p for p in _paths(value) if type(_get(value, p)) is dict and len(_get(value, p)) > 1]
    path = data.draw(st.sampled_from(maps))
    mutated = _resign(_reorder(value, path))
    assert not _parsed(mutated)
    assert not _walked(mutated)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def test_a_float_in_place_of_an_integer_is_refused() -> None:
    value = _signed_value(OPS[1])
    mutated = _resign(_replace(value, (3, "t"), float(NOW)))
    with pytest.raises(MalformedMessage, match="must be an integer"):
        parse_op(mutated)


def test_a_float_deep_in_a_wrapped_key_is_refused() -> None:
    value = _signed_value(OPS[1])  # an add
    mutated = _resign(_replace(value, (3, "b", "rot", "w", 0, 1), 1.5))
    with pytest.raises(MalformedMessage, match="wrapped key"):
        parse_op(mutated)
