"""LAN discovery over mDNS/DNS-SD with python-zeroconf's asyncio API.

Service type `_covey._tcp.local.`. Each advert has a random instance name
(chosen by the node) and a random host name (so neither names the device),
the port, every usable address (IPv4 and IPv6), and the TXT record the node
made (`covey.core.discovery.encode_advert`: a salt and 120 tags in five
strings of at most 255 bytes, 995 bytes in all), published byte for byte.

The browser reports every advert it reads (`on_seen`), its TXT record as it
arrived, and every one that goes (`on_lost`); reading the record and
deciding which adverts matter is the node's job.

Adverts skip zeroconf's name probing (about 1.2 s measured here): the names
are 16 random bytes, so a conflict is as likely as guessing a key.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc
import ifaddr
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from covey.core import discovery
from covey.core.node import io

SERVICE: Final = "_covey._tcp.local."
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
    """One advert seen on the LAN: its TXT record as it arrived."""

    name: str
    addresses: list[str]
    port: int
    txt: bytes

    @property
    def tags(self) -> frozenset[bytes]:
        """Its tags, if it is a covey advert (none otherwise)."""
        advert = discovery.read_advert(self.txt)
        return frozenset() if advert is None else advert.tags


def service_info(port: int, txt: bytes, name: str, addresses: Sequence[str]) -> AsyncServiceInfo:
    """The zeroconf record set of one advert: TXT record `txt`, published as it is."""
    return AsyncServiceInfo(
        SERVICE,
        f"{name}.{SERVICE}",
        port=port,
        parsed_addresses=list(addresses),
        properties=txt,
        server=f"{secrets.token_hex(16)}.local.",
    )


class Advertiser:
    """One advert: a port and a TXT record, on every interface, under `name`.

    Tags change every hour: the node withdraws the advert and starts a new
    one with a new random name and salt, so the two cannot be linked.
    """

    def __init__(self, zc: AsyncZeroconf, port: int, txt: bytes, name: str | None = None) -> None:
        self.zc = zc
        self.txt = txt
        self.name = name = name or secrets.token_hex(16)
        self.info = service_info(port, txt, name, local_addresses())

    async def start(self) -> None:
        await self.zc.async_register_service(self.info, cooperating_responders=True)

    async def stop(self) -> None:
        await self.zc.async_unregister_service(self.info)


@dataclass
class Browser:
    """Watches the LAN for covey adverts and remembers what they said."""

    zc: AsyncZeroconf
    #: Called with every advert read, and with the name of every one withdrawn.
    on_seen: Callable[[Seen], Awaitable[None]] | None = None
    on_lost: Callable[[str], None] | None = None
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
            if self.on_lost is not None:
                self.on_lost(name)
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
            bytes(info.text or b""),
        )
        if self.on_seen is not None:
            await self.on_seen(seen)
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


#: Seconds between two looks at this host's addresses (adverts follow them).
ADDRESS_CHECK: Final = 10.0


def instance_name(service_name: str) -> str:
    """The name a node gave its advert, from the service name mDNS reports.

    The node names its adverts (`io.Advertise.name`) and knows its own by
    that name; mDNS reports `<name>._covey._tcp.local.`. Without this, a
    node took its own advert for a stranger's and dialed itself.
    """
    return service_name.removesuffix(f".{SERVICE}")


class MdnsLan:
    """The driver's `Lan` on mDNS: adverts published and browsed with zeroconf.

    Adverts are re-published when this host's addresses change (a laptop
    that moves to another network keeps being found).
    """

    def __init__(self) -> None:
        self._zc: AsyncZeroconf | None = None
        self._browser: Browser | None = None
        self._adverts: dict[str, Advertiser] = {}

    async def start(
        self, post: Callable[[io.Event], Coroutine[Any, Any, None]], tg: anyio.abc.TaskGroup
    ) -> None:
        self._zc = open_zeroconf()

        async def seen(advert: Seen) -> None:
            name = instance_name(advert.name)
            await post(io.AdvertSeen(name, tuple(advert.addresses), advert.port, advert.txt))

        def lost(name: str) -> None:
            tg.start_soon(post, io.AdvertLost(instance_name(name)))

        self._browser = Browser(self._zc, on_seen=seen, on_lost=lost)
        await self._browser.start()
        tg.start_soon(self._follow_addresses)

    async def _follow_addresses(self) -> None:
        addresses = local_addresses()
        while True:
            await anyio.sleep(ADDRESS_CHECK)
            now = local_addresses()
            if now == addresses:
                continue
            addresses = now
            for name, advert in list(self._adverts.items()):
                await advert.stop()
                replacement = Advertiser(advert.zc, advert.info.port or 0, advert.txt, advert.name)
                await replacement.start()
                self._adverts[name] = replacement

    async def advertise(self, name: str, port: int, txt: bytes) -> None:
        assert self._zc is not None
        advert = Advertiser(self._zc, port, txt, name)
        await advert.start()
        self._adverts[name] = advert

    async def withdraw(self, name: str) -> None:
        advert = self._adverts.pop(name, None)
        if advert is not None:
            await advert.stop()

    async def close(self) -> None:
        for advert in list(self._adverts.values()):
            await advert.stop()
        self._adverts.clear()
        if self._browser is not None:
            await self._browser.stop()
        if self._zc is not None:
            await self._zc.async_close()
