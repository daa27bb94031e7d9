"""Typed readers for the fields of a decoded message body.

A body arrives as a dict of covey values (see `encoding`). These helpers pull
one field out with its exact type and bounds, so that a body class's
`from_wire` is a short list of declarations and every mistake in the input is
a MalformedMessage naming the field (never a KeyError or TypeError).
"""

from __future__ import annotations

import operator
import unicodedata
from typing import Any, Final

from covey.errors import MalformedMessage

#: Unicode categories never allowed in a covey text field: controls, format
#: characters (bidirectional overrides, zero-width joiners), line and
#: paragraph separators, surrogates and private use. Names are read by
#: people comparing devices; nothing in them may hide or reorder text.
INVISIBLE: Final = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co"))


#: Each schema's keys in canonical order (by their UTF-8 bytes).
_KEY_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def as_map(value: Any, keys: tuple[str, ...], *, what: str = "body") -> dict[str, Any]:
    """`value` as a map with exactly `keys` (no more, no fewer), in canonical order.

    The order is checked here too (a map keeps the order it was decoded
    in), so a value decoded without the type walk (`encoding.decode`,
    `walk_types=False`) is held to canonical key order all the same.
    """
    if type(value) is not dict:
        raise MalformedMessage(f"{what} must be a map")
    expected = _KEY_ORDERS.get(keys)
    if expected is None:
        expected = _KEY_ORDERS[keys] = tuple(sorted(keys, key=lambda k: k.encode("utf-8")))
    if tuple(value) != expected:
        if set(value) == set(expected):
            raise MalformedMessage(f"{what} has its fields out of order")
        raise MalformedMessage(f"{what} has the wrong fields")
    return value


def get_bytes(
    body: dict[str, Any], name: str, *, size: int | None = None, max_len: int = 4096
) -> bytes:
    """A byte string field of exactly `size` bytes, or at most `max_len`."""
    value = body[name]
    if type(value) is not bytes:
        raise MalformedMessage(f"field {name!r} must be bytes")
    if size is not None and len(value) != size:
        raise MalformedMessage(f"field {name!r} must be {size} bytes")
    if len(value) > max_len:
        raise MalformedMessage(f"field {name!r} is too long")
    return value


def get_str(body: dict[str, Any], name: str, *, max_len: int, min_len: int = 0) -> str:
    """A text field of `min_len` to `max_len` characters, no control characters."""
    value = body[name]
    if type(value) is not str:
        raise MalformedMessage(f"field {name!r} must be text")
    if not min_len <= len(value) <= max_len:
        raise MalformedMessage(f"field {name!r} must be {min_len} to {max_len} characters")
    if not (value.isascii() and value.isprintable()):
        if any(unicodedata.category(c) in INVISIBLE for c in value):
            raise MalformedMessage(f"field {name!r} contains control or invisible characters")
        if not unicodedata.is_normalized("NFC", value):
            raise MalformedMessage(f"field {name!r} is not in Unicode normal form C")
    return value


def get_int(body: dict[str, Any], name: str, *, min_value: int, max_value: int) -> int:
    """An integer field within [min_value, max_value] (booleans are not integers)."""
    value = body[name]
    if type(value) is not int:  # a bool is not an integer here
        raise MalformedMessage(f"field {name!r} must be an integer")
    if not min_value <= value <= max_value:
        raise MalformedMessage(f"field {name!r} is out of range")
    return value


def sorted_pairs(
    value: Any, *, first: int, second: frozenset[int], shape: str, order: str
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """`value`, a list of [first, second] byte-string pairs, as its two columns.

    Each `first` of exactly `first` bytes, each `second` of a length in
    `second`, sorted by `first`, once each (`shape` and `order` are the
    error messages). The caller checks the list's type and length.

    Checked a column at a time by C-level maps rather than pair by pair:
    it runs for every wrapped key of every op parsed. The columns are kept
    as they are (no tuple per pair: a large merge held 125,000 of them,
    most of what the garbage collector then had to walk).
    """
    if not value:
        return (), ()
    if set(map(type, value)) != {list}:
        raise MalformedMessage(shape)
    try:  # (lists of unequal lengths, or all of a length other than two)
        firsts, seconds = zip(*value, strict=True)
    except ValueError:
        raise MalformedMessage(shape) from None
    if (
        set(map(type, firsts)) != {bytes}
        or set(map(type, seconds)) != {bytes}
        or set(map(len, firsts)) != {first}
        or not set(map(len, seconds)) <= second
    ):
        raise MalformedMessage(shape)
    if not all(map(operator.lt, firsts, firsts[1:])):
        raise MalformedMessage(order)
    return firsts, seconds
