"""Canonical, bounded msgpack: the one encoding of everything covey signs.

covey's values are built from a small set of types: None, bool, int (64-bit),
bytes, str, list, and dict with str keys. Floats, extension types and
timestamps do not exist in the protocol and are refused.

Canonical means one value has exactly one encoding: msgpack's shortest forms
for integers and lengths (what msgpack-python always writes), and map keys in
ascending order of their UTF-8 bytes. `decode` accepts bytes only if they are
that encoding (it re-encodes the decoded value and compares), so a value can
never arrive in two spellings that hash or sign differently.

`decode` is strict and bounded: a size limit on the whole input and on every
string, byte string, array and map, and a nesting limit, all checked before
anything is allocated for them. Every failure is a MalformedMessage (or its
subclass OversizeMessage); nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import msgpack

from covey.errors import MalformedMessage, OversizeMessage

#: A decoded covey value.
Value: TypeAlias = bool | int | bytes | str | list[Any] | dict[str, Any] | None

INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 64) - 1


@dataclass(frozen=True)
class Limits:
    """Bounds for one decoding context. Every field is a hard maximum."""

    #: Whole input, in bytes.
    total: int
    #: One byte string.
    bin_len: int
    #: One text string, in bytes.
    str_len: int
    #: Items in one array.
    array_len: int
    #: Entries in one map.
    map_len: int
    #: Nested arrays and maps, counting the outermost.
    depth: int


#: Default limits: generous enough for a rotation that wraps a key for 10,000
#: members (about 1 MiB), small enough that a hostile input costs little.
DEFAULT_LIMITS: Final = Limits(
    total=4 << 20,
    bin_len=4 << 20,
    str_len=4096,
    array_len=65_536,
    map_len=64,
    depth=16,
)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage("extension types are not allowed")


def _canonical(value: Any, depth: int, limits: Limits) -> Any:
    """Check `value` is made of covey's types; return it with maps key-sorted."""
    if depth > limits.depth:
        raise MalformedMessage("message is nested too deeply")
    if value is None or isinstance(value, (bool, bytes, str)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise MalformedMessage("integer out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1, limits) for item in value]
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedMessage("map keys must be strings")
            items.append((key.encode("utf-8"), key, _canonical(item, depth + 1, limits)))
        items.sort(key=lambda entry: entry[0])
        return {key: item for _, key, item in items}
    raise MalformedMessage(f"values of type {type(value).__name__} are not allowed")


def encode(value: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The canonical encoding of `value` (raises MalformedMessage if it has none)."""
    data: bytes = msgpack.packb(_canonical(value, 1, limits), use_bin_type=True)
    return data


def _sorted_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Build a decoded map, refusing non-string, unsorted or repeated keys.

    Python orders str by code point, and UTF-8 preserves code point order,
    so comparing the str keys compares their UTF-8 bytes.
    """
    previous = None
    for key, _ in pairs:
        if type(key) is not str:
            raise MalformedMessage("map keys must be strings")
        if previous is not None and key <= previous:
            raise MalformedMessage("map keys must be sorted, once each")
        previous = key
    return dict(pairs)


_SCALARS: Final = (type(None), bool, int, bytes, str)


def _check_types(value: Any, depth: int, limits: Limits) -> None:
    """Refuse floats, timestamps and over-deep nesting (maps were checked on decode)."""
    if depth > limits.depth:
        raise MalformedMessage("message is nested too deeply")
    if isinstance(value, list):
        for item in value:
            if type(item) not in _SCALARS:
                _check_types(item, depth + 1, limits)
    elif isinstance(value, dict):
        for item in value.values():
            if type(item) not in _SCALARS:
                _check_types(item, depth + 1, limits)
    elif type(value) not in _SCALARS:
        raise MalformedMessage(f"values of type {type(value).__name__} are not allowed")


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode canonical msgpack strictly; raise MalformedMessage on anything else.

    Three checks make "canonical": maps are checked as they are decoded
    (string keys, sorted, unique); then every value's type; then the value
    is re-encoded and must give back exactly the input bytes, which rules
    out every wider-than-needed integer, length or string header.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("message is not bytes")
    data = bytes(data)
    if len(data) > limits.total:
        raise OversizeMessage(f"message is larger than {limits.total} bytes")
    if not data:
        raise MalformedMessage("message is empty")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_sorted_map,
            ext_hook=_refuse_ext,
            max_bin_len=limits.bin_len,
            max_str_len=limits.str_len,
            max_array_len=limits.array_len,
            max_map_len=limits.map_len,
            max_ext_len=0,
        )
    except MalformedMessage:
        raise
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, BufferFull and OutOfData are all
        # ValueError subclasses; the message is msgpack's, which holds no data.
        raise MalformedMessage(f"not valid msgpack ({type(exc).__name__})") from exc
    if type(value) not in _SCALARS:
        _check_types(value, 1, limits)
    if msgpack.packb(value, use_bin_type=True) != data:
        raise MalformedMessage("message is not in canonical form")
    return value  # type: ignore[no-any-return]
