"""Canonical msgpack: one encoding per value, strict and bounded decoding."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import encoding
from covey.core.encoding import DEFAULT_LIMITS, Limits
from covey.errors import MalformedMessage, OversizeMessage
from tests.strategies import values


@given(values)
def test_round_trip(value: object) -> None:
    data = encoding.encode(value)
    assert encoding.decode(data) == value


small_ints = st.integers(min_value=-(1 << 31), max_value=1 << 31)


@given(st.dictionaries(st.text(max_size=8), small_ints, min_size=2, max_size=8), st.randoms())
def test_map_order_does_not_change_the_encoding(mapping: dict[str, int], random) -> None:
    items = list(mapping.items())
    random.shuffle(items)
    assert encoding.encode(dict(items)) == encoding.encode(mapping)


@given(st.binary(max_size=256))
def test_arbitrary_bytes_decode_or_raise_malformed(data: bytes) -> None:
    try:
        value = encoding.decode(data)
    except MalformedMessage:
        return
    # Whatever decodes is canonical: it re-encodes to the very same bytes.
    assert encoding.encode(value) == data


@given(st.dictionaries(st.text(max_size=8), small_ints, min_size=2, max_size=8))
def test_maps_out_of_key_order_are_refused(mapping: dict[str, int]) -> None:
    canonical = encoding.encode(mapping)
    keys = sorted(mapping, key=lambda k: k.encode())
    reordered = msgpack.packb({k: mapping[k] for k in reversed(keys)}, use_bin_type=True)
    assert reordered != canonical
    with pytest.raises(MalformedMessage):
        encoding.decode(reordered)


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_wide_integer_spellings_are_refused(number: int) -> None:
    wide = b"\xcf" + number.to_bytes(8, "big")  # the uint64 spelling
    with pytest.raises(MalformedMessage):
        encoding.decode(wide)
    assert encoding.decode(encoding.encode(number)) == number


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\xc1", "never-used byte"),
        (b"\xcb" + b"\x00" * 8, "float64"),
        (b"\xca" + b"\x00" * 4, "float32"),
        (b"\xd4\x01\x00", "fixext"),
        (b"\xd6\xff\x00\x00\x00\x00", "timestamp"),
        (b"\x92\x01", "truncated array"),
        (b"\x01\x02", "trailing bytes"),
        (b"\xcc\x01", "uint8 spelling of 1"),
        (b"\x82\xa1b\x01\xa1a\x02", "map keys out of order"),
        (b"\x82\xa1a\x01\xa1a\x02", "duplicate map key"),
        (b"\x81\x01\x02", "integer map key"),
        (b"\xa2\xff\xfe", "invalid UTF-8"),
        (b"\xd9\x01a", "str8 spelling of a short string"),
        (b"\x91" * 40 + b"\x01", "nested too deeply"),
    ],
)
def test_malformed_inputs(data: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage):
        encoding.decode(data)


def test_limits_are_enforced_before_allocation() -> None:
    small = Limits(total=100, bin_len=8, str_len=8, array_len=3, map_len=2, depth=3)
    with pytest.raises(OversizeMessage):
        encoding.decode(b"\xc4\x01x" * 50, small)
    for value in ([1, 2, 3, 4], b"x" * 9, "y" * 9, {"a": 1, "b": 2, "c": 3}, [[[[1]]]]):
        data = encoding.encode(value)
        with pytest.raises(MalformedMessage):
            encoding.decode(data, small)
    # A header that claims a huge bin is refused without reading further.
    with pytest.raises(MalformedMessage):
        encoding.decode(b"\xc6\xff\xff\xff\xff", DEFAULT_LIMITS)


def test_unencodable_values_are_refused() -> None:
    for value in (1.5, {1: 2}, 1 << 64, -(1 << 63) - 1, {"a": object()}):
        with pytest.raises(MalformedMessage):
            encoding.encode(value)


def test_encoding_matches_plain_msgpack_for_sorted_values() -> None:
    value = {"a": [1, b"x", "y", None, True], "b": -300}
    assert encoding.encode(value) == msgpack.packb(value, use_bin_type=True)
