"""The messages on a relay connection, read strictly (PROTOCOL.md section 18.4).

A request is a canonical msgpack map: `n` (the request's number, which the
answer repeats), `op` (what is asked) and that request's fields. An answer
is `{n, ok}` or `{n, error}` (`error`: a refusal's code, `RelayRefused`).
The relay's first message is its `Hello`. Everything is bounded
(`LIMITS`); a request that does not parse is `RelayMalformed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from covey.core import encoding, fields
from covey.errors import (
    RELAY_REFUSALS,
    MalformedMessage,
    RelayBadLifetime,
    RelayBadWait,
    RelayItemTooLarge,
    RelayMalformed,
    RelayRefused,
)
from covey.relay.limits import ITEM_SIZES, RelayLimits

#: Wire version of the relay protocol.
VERSION: Final = 1
#: IDs, keys and tokens on a relay are 32 bytes.
ID_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
CHALLENGE_BYTES: Final = 32
#: Item numbers one acknowledgement names at most (an inbox's worth).
MAX_ACK: Final = 1_000
#: The largest request: an item of the largest size and its fields.
MAX_REQUEST: Final = ITEM_SIZES[-1] + (64 << 10)

LIMITS: Final = encoding.Limits(
    total=MAX_REQUEST,
    bin_len=ITEM_SIZES[-1],
    str_len=32,
    array_len=MAX_ACK,
    map_len=16,
    depth=4,
    objects=4 * MAX_ACK,
)

#: Each request's fields besides `n` and `op`.
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "access": ("secret",),
    "inbox-auth": ("box", "pub", "sig"),
    "inbox-put": ("box", "token", "item", "ttl"),
    "inbox-fetch": ("box", "after"),
    "inbox-wait": ("box", "after", "seconds"),
    "inbox-ack": ("box", "numbers"),
    "inbox-writers": ("box", "hashes"),
    "mirror-put": ("token", "item", "ttl"),
    "mirror-get": ("read", "after"),
    "blob-put": ("token", "blob", "ttl"),
    "blob-get": ("id",),
}
MAX_NUMBER: Final = (1 << 63) - 1


@dataclass(frozen=True)
class Request:
    """A request read from the wire: its number, what it asks, its fields (checked).

    `refused`: a field that parsed but is outside the relay's limits (an
    item too large, a lifetime too long): the request is answered with it
    and the connection goes on. A request that does not parse at all is
    `RelayMalformed` (raised), and ends the connection.
    """

    number: int
    op: str
    fields: dict[str, Any]
    refused: RelayRefused | None = None


def read_request(data: bytes, limits: RelayLimits) -> Request:
    """Parse one request, checking every field's type and size (not rights)."""
    try:
        value = encoding.decode(data, LIMITS)
        if type(value) is not dict:
            raise MalformedMessage("a relay request is a map")
        op = fields.get_str(value, "op", max_len=32) if "op" in value else ""
        names = FIELDS.get(op)
        if names is None:
            raise MalformedMessage("unknown relay request")
        body = fields.as_map(value, ("n", "op", *names), what="relay request")
        number = fields.get_int(body, "n", min_value=1, max_value=MAX_NUMBER)
        try:
            checked = {name: _field(body, name, limits) for name in names}
        except (RelayItemTooLarge, RelayBadLifetime, RelayBadWait) as refusal:
            return Request(number, op, {}, refusal)
    except MalformedMessage as exc:
        raise RelayMalformed() from exc
    return Request(number, op, checked)


def _field(body: dict[str, Any], name: str, limits: RelayLimits) -> Any:
    if name in ("box", "pub", "token", "read", "id", "secret"):
        return fields.get_bytes(body, name, size=ID_BYTES)
    if name == "sig":
        return fields.get_bytes(body, name, size=SIGNATURE_BYTES)
    if name in ("item", "blob"):
        value = body[name]
        if type(value) is not bytes:
            raise MalformedMessage(f"field {name!r} must be bytes")
        if len(value) > limits.item_bytes:
            raise RelayItemTooLarge()
        if len(value) not in ITEM_SIZES:
            raise MalformedMessage("an item must be padded to one of the relay's sizes")
        return value
    if name == "ttl":
        ttl = body[name]
        if type(ttl) is not int:
            raise MalformedMessage("field 'ttl' must be an integer")
        if ttl == 0:
            return limits.ttl_default
        if not 0 < ttl <= limits.ttl_max:
            raise RelayBadLifetime()
        return ttl
    if name == "after":
        return fields.get_int(body, name, min_value=0, max_value=MAX_NUMBER)
    if name == "seconds":  # (0: answer at once, as a fetch)
        seconds = body[name]
        if type(seconds) is not int or seconds < 0:
            raise MalformedMessage("field 'seconds' must be a non-negative integer")
        if seconds > limits.wait_seconds:
            raise RelayBadWait()
        return seconds
    if name == "numbers":
        numbers = body[name]
        if type(numbers) is not list or len(numbers) > MAX_ACK:
            raise MalformedMessage(f"at most {MAX_ACK} item numbers at once")
        if any(type(n) is not int or not 0 < n <= MAX_NUMBER for n in numbers):
            raise MalformedMessage("item numbers are positive integers")
        return tuple(numbers)
    if name == "hashes":
        hashes = body[name]
        if type(hashes) is not list or len(hashes) > limits.inbox_writers:
            raise MalformedMessage(f"an inbox has at most {limits.inbox_writers} writers")
        if any(type(h) is not bytes or len(h) != ID_BYTES for h in hashes):
            raise MalformedMessage("write-token hashes are 32 bytes")
        return tuple(hashes)
    raise AssertionError(name)  # (every name of FIELDS is read above)


def write_request(number: int, op: str, **values: Any) -> bytes:
    """A request's bytes (what a device sends)."""
    if set(values) != set(FIELDS[op]):
        raise ValueError(f"{op} takes {FIELDS[op]}")
    return encoding.encode({"n": number, "op": op, **values})


def write_answer(number: int, ok: Any) -> bytes:
    return encoding.encode({"n": number, "ok": ok})


def write_refusal(number: int, refusal: RelayRefused) -> bytes:
    return encoding.encode({"n": number, "error": refusal.reason})


ANSWER_LIMITS: Final = encoding.Limits(
    total=MAX_REQUEST + ITEM_SIZES[-1],  # (a fetch may hold one item over its budget)
    bin_len=ITEM_SIZES[-1],
    str_len=32,
    array_len=MAX_ACK,
    map_len=16,
    depth=5,
    objects=8 * MAX_ACK,
)

#: The largest answer (what a device's reassembler allows).
MAX_ANSWER: Final = ANSWER_LIMITS.total


def read_answer(data: bytes) -> tuple[int, Any]:
    """(request number, what it answered, or the `RelayRefused` it was refused with)."""
    value = encoding.decode(data, ANSWER_LIMITS)
    if type(value) is not dict or set(value) not in ({"n", "ok"}, {"n", "error"}):
        raise MalformedMessage("a relay answer is {n, ok} or {n, error}")
    number = fields.get_int(value, "n", min_value=0, max_value=MAX_NUMBER)
    if "error" in value:
        code = fields.get_str(value, "error", max_len=32)
        return number, RELAY_REFUSALS.get(code, RelayRefused)()
    return number, value["ok"]


@dataclass(frozen=True)
class Hello:
    """The relay's first message: its proof, its limits, this connection's challenge."""

    proof: bytes
    limits: RelayLimits
    challenge: bytes

    def to_wire(self) -> bytes:
        return encoding.encode(
            {
                "v": VERSION,
                "proof": self.proof,
                "limits": self.limits.to_wire(),
                "challenge": self.challenge,
            }
        )

    @classmethod
    def from_wire(cls, data: bytes) -> Hello:
        body = fields.as_map(
            encoding.decode(data), ("v", "proof", "limits", "challenge"), what="relay hello"
        )
        if fields.get_int(body, "v", min_value=0, max_value=MAX_NUMBER) != VERSION:
            raise MalformedMessage("the relay speaks another version of the protocol")
        limits = RelayLimits.from_wire(body["limits"])
        if limits.fetch_items > MAX_ACK:
            raise MalformedMessage(f"a relay page holds at most {MAX_ACK} items")
        return cls(
            fields.get_bytes(body, "proof", size=SIGNATURE_BYTES),
            limits,
            fields.get_bytes(body, "challenge", size=CHALLENGE_BYTES),
        )
