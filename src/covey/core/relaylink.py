"""A relay's link: where it listens, the key it must prove it holds, its access secret.

    covey-relay://HOST:PORT/ACCESS#KEY

KEY is the relay's Ed25519 public key, 32 bytes in lowercase base32
without padding (52 characters), so a device needs nothing else to check
the relay (PROTOCOL.md section 18.1). ACCESS is the relay's access secret,
32 bytes the same way: whoever has the link may make inboxes and segments
on the relay (a stranger who only found the port may not). HOST is a DNS
name, an IPv4 address or an IPv6 address in brackets. A group's relays are
in its signed log as `add_relay` ops with the same four fields
(`covey.core.ops.AddRelay`).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Final

from covey.core.ops import RELAY_KEY_BYTES as KEY_BYTES
from covey.core.ops import valid_relay_host
from covey.errors import InvalidArgument

SCHEME: Final = "covey-relay://"


@dataclass(frozen=True)
class RelayLink:
    host: str
    port: int
    key: bytes
    access: bytes

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME}{host}:{self.port}/{encode_key(self.access)}#{encode_key(self.key)}"


def encode_key(key: bytes) -> str:
    return base64.b32encode(key).decode("ascii").rstrip("=").lower()


def parse_link(text: str) -> RelayLink:
    """Read a relay link a person gave; InvalidArgument saying what is wrong."""
    text = text.strip()
    if not text.startswith(SCHEME):
        raise InvalidArgument(f"a relay link starts with {SCHEME}")
    where, hash_, key_text = text[len(SCHEME) :].partition("#")
    if not hash_:
        raise InvalidArgument("the relay link has no key (the part after #)")
    key = _decode_key(key_text, "key")
    where, slash, access_text = where.partition("/")
    if not slash:
        raise InvalidArgument(
            "the relay link has no access part: covey-relay://HOST:PORT/ACCESS#KEY"
        )
    access = _decode_key(access_text, "access part")
    host, colon, port_text = where.rpartition(":")
    if not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument("the relay link needs a port: covey-relay://HOST:PORT#KEY")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1].lower()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidArgument("the relay link's address in brackets is not IPv6") from None
        if not valid_relay_host(host):  # (a zone, "%eth0", means nothing to other devices)
            raise InvalidArgument("the relay link's IPv6 address has a zone: leave it out")
    elif ":" in host or not valid_relay_host(host.lower()):
        raise InvalidArgument("the relay link's host is not a name or an address")
    return RelayLink(host.lower(), int(port_text), key, access)


def _decode_key(text: str, what: str) -> bytes:
    if len(text) != 52:
        raise InvalidArgument(f"the relay link's {what} is not 52 characters (is it cut short?)")
    try:
        key = base64.b32decode(text.upper() + "====")
    except ValueError:
        raise InvalidArgument(f"the relay link's {what} is not base32") from None
    if len(key) != KEY_BYTES or encode_key(key) != text.lower():
        raise InvalidArgument(f"the relay link's {what} is not 32 bytes")
    return key
