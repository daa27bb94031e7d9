"""LAN discovery over mDNS/DNS-SD with python-zeroconf's asyncio API.

Service type `_covey._tcp.local.`. Each advert has a random instance name
and a random host name (so neither names the device), the port, every usable
address (IPv4 and IPv6), and one TXT property, `t`: the tags members can
recognize (`covey.core.discovery`) or an invitation's tag, in hex.

Adverts skip zeroconf's name probing (about 1.2 s measured here): the names
are 16 random bytes, so a conflict is as likely as guessing a key.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
import ifaddr
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE: Final = "_covey._tcp.local."
TAGS_PROPERTY: Final = b"t"
#: Adverts a browser remembers (the most recent ones it kept).
MAX_SEEN: Final = 256
#: Adverts being resolved at once, and names waiting for their turn.
MAX_RESOLVING: Final = 32
MAX_WAITING: Final = 1024
#: Milliseconds to wait for an advert's details after it is announced (a LAN
#: answers in a few; a name that never does should not hold a slot long).
RESOLVE_TIMEOUT_MS: Final = 1000


def local_addresses() -> list[str]:
    """Every usable address of this host: IPv4 and global IPv6, no loopback."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if address.is_loopback or address.is_link_local or address.is_multicast:
                continue
            found.append(str(address))
    return sorted(set(found))


@dataclass
class Seen:
    """One advert seen on the LAN."""

    name: str
    addresses: list[str]
    port: int
    tags: list[bytes]


def encode_tags(tags: list[bytes]) -> bytes:
    return b",".join(tag.hex().encode() for tag in tags)


def decode_tags(value: bytes | None) -> list[bytes]:
    if not value:
        return []
    tags = []
    for part in value.split(b",")[:64]:
        try:
            tags.append(bytes.fromhex(part.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            continue
    return tags


class Advertiser:
    """One advert: this device's port and tags, on every interface.

    Tags change every hour: stop this advert and start a new one (with a new
    random name, so the two cannot be linked by name either).
    """

    def __init__(self, zc: AsyncZeroconf, port: int, tags: list[bytes]) -> None:
        self._zc = zc
        name = secrets.token_hex(16)
        self.info = AsyncServiceInfo(
            SERVICE,
            f"{name}.{SERVICE}",
            port=port,
            parsed_addresses=local_addresses(),
            properties={TAGS_PROPERTY: encode_tags(tags)},
            server=f"{secrets.token_hex(16)}.local.",
        )

    async def start(self) -> None:
        await self._zc.async_register_service(self.info, cooperating_responders=True)

    async def stop(self) -> None:
        await self._zc.async_unregister_service(self.info)


@dataclass
class Browser:
    """Watches the LAN for covey adverts and remembers what they said."""

    zc: AsyncZeroconf
    #: Which adverts are worth remembering (the daemon: those one of its
    #: groups recognizes; `covey join`: those with the invitation's tag).
    #: Others are dropped as soon as they are read, so a flood of strangers'
    #: adverts cannot crowd out the ones that matter.
    keep: Callable[[Seen], bool] = lambda seen: True
    seen: dict[str, Seen] = field(default_factory=dict)
    _browser: AsyncServiceBrowser | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _tasks: set[asyncio.Future[None]] = field(default_factory=set)
    _waiting: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        self._browser = AsyncServiceBrowser(self.zc.zeroconf, [SERVICE], handlers=[self._on_change])

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            self.seen.pop(name, None)
            return
        if len(self._tasks) >= MAX_RESOLVING:
            # A flood: queue the name (newest kept) rather than drop it, so an
            # advert that arrives meanwhile is still read once there is room.
            self._waiting.pop(name, None)
            self._waiting[name] = service_type
            while len(self._waiting) > MAX_WAITING:
                del self._waiting[next(iter(self._waiting))]
            return
        self._start(zeroconf, service_type, name)

    def _start(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        task = asyncio.ensure_future(self._resolve(zeroconf, service_type, name))
        self._tasks.add(task)

        def done(finished: asyncio.Future[None]) -> None:
            self._tasks.discard(finished)
            if self._waiting:  # the newest waiting name first
                next_name = next(reversed(self._waiting))
                self._start(zeroconf, self._waiting.pop(next_name), next_name)

        task.add_done_callback(done)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
            return
        seen = Seen(
            name,
            info.parsed_addresses(IPVersion.All),
            info.port or 0,
            decode_tags(info.properties.get(TAGS_PROPERTY)),
        )
        if not self.keep(seen):
            return
        self.seen.pop(name, None)
        while len(self.seen) >= MAX_SEEN:  # forget the oldest
            del self.seen[next(iter(self.seen))]
        self.seen[name] = seen
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, wanted: Callable[[Seen], bool], timeout: float) -> Seen:
        """The first advert (already seen or still to come) that `wanted` accepts."""
        with anyio.fail_after(timeout):
            while True:
                for seen in list(self.seen.values()):
                    if wanted(seen):
                        return seen
                await self._changed.wait()

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()


def open_zeroconf() -> AsyncZeroconf:
    """A zeroconf instance on every interface, IPv4 and IPv6."""
    return AsyncZeroconf(ip_version=IPVersion.All)
