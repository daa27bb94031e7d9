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
    #: Values in the whole message, containers and scalars alike. Every
    #: decoded value costs tens of bytes of memory however small its
    #: encoding (an empty array is one byte), so this bounds memory.
    objects: int = 100_000


#: Default limits: generous enough for a rotation that wraps a key for 10,000
#: members (about 1 MiB, 30,000 values), small enough that a hostile input
#: costs little (at most about 10 MB of memory).
DEFAULT_LIMITS: Final = Limits(
    total=4 << 20,
    bin_len=4 << 20,
    str_len=4096,
    array_len=65_536,
    map_len=64,
    depth=16,
    objects=100_000,
)

#: Inputs up to this size are decoded directly: with every declared count
#: capped at the input's length, msgpack's preallocation for the worst
#: nesting of such an input (its C stack allows 1,024 levels) stays under
#: 8 bytes x 2,048 x 682, about 11 MB, and is freed at once. Larger inputs
#: are pre-walked, which costs about 0.3 µs per value.
PREWALK_ABOVE: Final = 2048


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage("extension types are not allowed")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedMessage("text must be valid Unicode (no lone surrogates)") from exc


def _canonical(value: Any, depth: int, limits: Limits) -> Any:
    """Check `value` is made of covey's types; return it with maps key-sorted."""
    if depth > limits.depth:
        raise MalformedMessage("message is nested too deeply")
    if isinstance(value, str):
        _utf8(value)  # refuse what has no UTF-8 form (lone surrogates)
        return value
    if value is None or isinstance(value, (bool, bytes)):
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
            items.append((_utf8(key), key, _canonical(item, depth + 1, limits)))
        items.sort(key=lambda entry: entry[0])
        return {key: item for _, key, item in items}
    raise MalformedMessage(f"values of type {type(value).__name__} are not allowed")


def encode(value: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The canonical encoding of `value` (raises MalformedMessage if it has none)."""
    data: bytes = _PACKER.pack(_canonical(value, 1, limits))
    return data


_SCALARS: Final = frozenset((type(None), bool, int, bytes, str))
#: One packer for every encoding (`msgpack.packb` builds one per call, about
#: a microsecond of each op parsed). It holds no state between calls
#: (autoreset), calls back into no Python code (no `default`), and runs
#: under the GIL, so sharing it between threads is safe.
_PACKER: Final = msgpack.Packer(use_bin_type=True, autoreset=True)


def _check_types(value: list[Any] | dict[Any, Any], depth: int, limits: Limits) -> None:
    """Refuse floats, timestamps, non-text or unsorted map keys, and deep nesting.

    Python orders str by code point and UTF-8 preserves code point order, so
    comparing str keys compares their UTF-8 bytes. (Repeated keys collapse
    when msgpack builds the dict; the re-encoding check in `decode` sees that.)
    Written with exact type tests, not isinstance: it runs on every message.
    """
    if depth > limits.depth:
        raise MalformedMessage("message is nested too deeply")
    if type(value) is dict:
        previous = None
        for key in value:
            if type(key) is not str:
                raise MalformedMessage("map keys must be strings")
            if previous is not None and key <= previous:
                raise MalformedMessage("map keys must be sorted, once each")
            previous = key
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is list or kind is dict:
            _check_types(item, depth + 1, limits)
        elif kind not in _SCALARS:
            raise MalformedMessage(f"values of type {kind.__name__} are not allowed")


# msgpack's fixed-size scalars: first byte -> bytes that follow it.
_FIXED: Final = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED.update({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8})
# Strings and byte strings with a length field: first byte -> its size.
_SIZED: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
# Arrays and maps with a count field: first byte -> (count size, values per entry).
_CONTAINERS: Final = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _prewalk(data: bytes, limits: Limits) -> None:
    """Check nesting, value count and declared sizes by reading headers only.

    msgpack allocates as it goes (and trusts a container's declared count),
    so a few MB of one-byte empty arrays would become hundreds of MB of
    Python objects before any other check ran. This walk allocates nothing.
    """
    end = len(data)
    position = 0
    values = 0
    pending = [1]  # values still expected at each open nesting level
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        values += 1
        if values > limits.objects:
            raise OversizeMessage(f"message holds more than {limits.objects} values")
        if position >= end:
            raise MalformedMessage("message is truncated")
        first = data[position]
        position += 1
        count = 0
        if first <= 0x7F or first >= 0xE0:
            continue
        if 0x80 <= first <= 0x8F:
            count = 2 * (first & 0x0F)
        elif 0x90 <= first <= 0x9F:
            count = first & 0x0F
        elif 0xA0 <= first <= 0xBF:
            position += first & 0x1F
        elif first in _FIXED:
            position += _FIXED[first]
        elif first in _SIZED:
            size = _SIZED[first]
            position += size + int.from_bytes(data[position : position + size], "big")
        elif first in _CONTAINERS:
            size, per_entry = _CONTAINERS[first]
            count = per_entry * int.from_bytes(data[position : position + size], "big")
            position += size
        else:
            raise MalformedMessage("floats and extension types are not allowed")
        if position > end:
            raise MalformedMessage("message is truncated")
        if count:
            if count > end - position:  # every value takes at least one byte
                raise MalformedMessage("a container claims more values than the message holds")
            if len(pending) >= limits.depth:
                raise MalformedMessage("message is nested too deeply")
            pending.append(count)
    if position != end:
        raise MalformedMessage("message has trailing bytes")


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS, *, walk_types: bool = True) -> Value:
    """Decode canonical msgpack strictly; raise MalformedMessage on anything else.

    Two checks make "canonical": every value's type, and every map's keys
    (text, sorted); then the value is re-encoded and must give back exactly
    the input bytes, which rules out repeated map keys and every
    wider-than-needed integer, length or string header.

    `walk_types=False` leaves the first check to the caller, which must then
    read every value of the result against a closed schema: each value's
    exact type, and each map's keys in order (`fields.as_map`). Until it
    has, the result may hold floats, timestamps or unsorted maps. Ops are
    read that way (`ops.parse_op`): the schema reads every value anyway,
    and the walk was about a tenth of parsing an op. Size, nesting (over
    `PREWALK_ABOVE`) and the re-encoding are checked either way.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("message is not bytes")
    data = bytes(data)
    if len(data) > limits.total:
        raise OversizeMessage(f"message is larger than {limits.total} bytes")
    if not data:
        raise MalformedMessage("message is empty")
    if len(data) > PREWALK_ABOVE:
        _prewalk(data, limits)
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_bin_len=limits.bin_len,
            max_str_len=limits.str_len,
            max_array_len=min(limits.array_len, len(data)),
            max_map_len=min(limits.map_len, len(data) // 2),
            max_ext_len=0,
        )
    except MalformedMessage:
        raise
    except MemoryError as exc:
        raise OversizeMessage("message is too large to decode") from exc
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, BufferFull and OutOfData are all
        # ValueError subclasses; the message is msgpack's, which holds no data.
        raise MalformedMessage(f"not valid msgpack ({type(exc).__name__})") from exc
    kind = type(value)
    if not walk_types:
        pass
    elif kind is list or kind is dict:
        _check_types(value, 1, limits)
    elif kind not in _SCALARS:
        raise MalformedMessage(f"values of type {kind.__name__} are not allowed")
    if _PACKER.pack(value) != data:
        raise MalformedMessage("message is not in canonical form")
    return value  # type: ignore[no-any-return]
