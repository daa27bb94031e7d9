"""What a relay accepts: its limits (advertised in its hello) and the padded sizes.

Every limit is a hard maximum that the relay enforces with a refusal the
device can name (`covey.errors.RelayRefused`), never a silent drop
(PROTOCOL.md section 18.4). The anchors for the values are in that section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from covey.core import fields, relayitems
from covey.errors import MalformedMessage

MIB: Final = 1 << 20
DAY: Final = 86_400

#: The only sizes an item, mirror item or blob may have on a relay (bytes,
#: as stored: padding and encryption included). A device pads inside its
#: encryption to the next of these, so the relay sees one of seven sizes;
#: the relay refuses any other size, so a device that forgot cannot leak.
ITEM_SIZES: Final = relayitems.ITEM_SIZES  # (1, 4, 16, 64, 256 KiB, 1 and 4 MiB)


def padded_size(length: int) -> int:
    """The smallest item size that holds `length` bytes (MalformedMessage if none)."""
    for size in ITEM_SIZES:
        if length <= size:
            return size
    raise MalformedMessage(f"an item is at most {ITEM_SIZES[-1]} bytes")


@dataclass(frozen=True)
class RelayLimits:
    """One relay's limits, as its hello states them."""

    #: One item or blob, in bytes (the largest of ITEM_SIZES).
    item_bytes: int = ITEM_SIZES[-1]
    #: Items and bytes one inbox holds.
    inbox_items: int = 1_000
    inbox_bytes: int = 64 * MIB
    #: Items and bytes one mirror segment holds.
    segment_items: int = 10_000
    segment_bytes: int = 256 * MIB
    #: An item's lifetime when the put names none, and the longest allowed.
    ttl_default: int = 14 * DAY
    ttl_max: int = 30 * DAY
    #: An inbox nobody read or set writers for in this long is deleted.
    inbox_idle: int = 90 * DAY
    #: Write-token hashes per inbox.
    inbox_writers: int = 4
    #: Connections from one address at once.
    connections_per_address: int = 32
    #: Requests per second on one connection, and the burst allowed.
    requests_per_second: int = 50
    request_burst: int = 100
    #: What one fetch or mirror read returns at most: items' bytes (or the
    #: first item alone, if larger), and items.
    fetch_bytes: int = 1 * MIB
    fetch_items: int = 1_000
    #: Seconds an `inbox-wait` may hold its answer for an item to arrive:
    #: long enough that a waiting device costs the relay a few requests an
    #: hour, short enough that a connection lost without a word (a phone
    #: leaving its network) frees its waiter soon.
    wait_seconds: int = 300

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _NAMES}

    @classmethod
    def from_wire(cls, value: Any) -> RelayLimits:
        """Read a relay's advertised limits (each a positive integer)."""
        body = fields.as_map(value, _NAMES, what="relay limits")
        return cls(
            **{name: fields.get_int(body, name, min_value=1, max_value=1 << 40) for name in _NAMES}
        )


_NAMES: Final = tuple(RelayLimits.__dataclass_fields__)

DEFAULT_LIMITS: Final = RelayLimits()
