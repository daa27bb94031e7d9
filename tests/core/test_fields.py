"""The typed field readers: `sorted_pairs` checked against a plain reading.

`sorted_pairs` checks a list of [bytes, bytes] pairs a column at a time (it
runs for every wrapped key of every op parsed); the reference below reads
it pair by pair, the obvious way. On any input, both accept the same
lists and give the same pairs (as two columns), and a refusal is a MalformedMessage.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from covey.core import fields
from covey.errors import MalformedMessage

SIZES = frozenset((0, 3))


def reference(value: list[Any]) -> list[tuple[bytes, bytes]] | None:
    """The pairs, or None where the input must be refused."""
    pairs = []
    previous = None
    for item in value:
        if type(item) is not list or len(item) != 2:
            return None
        first, second = item
        if type(first) is not bytes or type(second) is not bytes:
            return None
        if len(first) != 2 or len(second) not in SIZES:
            return None
        if previous is not None and first <= previous:
            return None
        previous = first
        pairs.append((first, second))
    return pairs


class Bytes(bytes):
    """A bytes subclass: not what msgpack gives, refused like any other type."""


leaf = st.one_of(
    st.binary(max_size=4),
    st.binary(min_size=2, max_size=2).map(Bytes),
    st.integers(),
    st.none(),
    st.booleans(),
    st.text(max_size=2),
    st.floats(allow_nan=False),
)
pair = st.one_of(
    st.lists(st.sampled_from([b"aa", b"ab", b"ba", b"bb", b"", b"xyz"]), min_size=2, max_size=2),
    st.tuples(st.binary(min_size=2, max_size=2), st.sampled_from([b"", b"abc"])).map(list),
    st.lists(leaf, max_size=3),
    leaf,
)


@given(st.lists(pair, max_size=6))
def test_sorted_pairs_accepts_what_a_plain_reading_accepts(value: list[Any]) -> None:
    expected = reference(value)
    try:
        firsts, seconds = fields.sorted_pairs(
            value, first=2, second=SIZES, shape="shape", order="order"
        )
        got = list(zip(firsts, seconds, strict=True))
    except MalformedMessage:
        got = None
    assert got == expected


def test_sorted_pairs_names_what_is_wrong() -> None:
    def refusal(value: list[Any]) -> str:
        try:
            fields.sorted_pairs(value, first=2, second=SIZES, shape="shape", order="order")
        except MalformedMessage as exc:
            return str(exc)
        return "accepted"

    assert refusal([[b"aa", b""], [b"ab", b"abc"]]) == "accepted"
    assert refusal([[b"ab", b""], [b"aa", b""]]) == "order"
    assert refusal([[b"aa", b""], [b"aa", b""]]) == "order"
    assert refusal([[b"aa", b"ab"]]) == "shape"
    assert refusal([[b"aa", b"", b""]]) == "shape"
    assert refusal([(b"aa", b"")]) == "shape"
    assert refusal([[b"aa", 1.5]]) == "shape"
