"""`covey up`: discovery, the listener and sync in one anyio task group.

The daemon

* listens on TCP and advertises on mDNS the discovery tags of every group
  this device is in (a new advert when they change, every hour and with
  every change to a log, and when this host's addresses change);
* watches the LAN for adverts whose tags one of its groups recognizes, and
  syncs with each such device when it appears, every `SYNC_INTERVAL`
  seconds, and at once when the local log changed;
* answers connections from devices it knows (members of a shared group);
* persists every change before anything leaves (`runtime.syncer`), and
  records the devices it met for `covey status`;
* heals: rotates a group whose current key a merge left with a removed
  device (or without a member), the most senior member first.

The store is the source of truth: groups are loaded from it for every
session, so a change made by another covey command while the daemon runs is
picked up. One lock serializes the daemon's use of the store.

It runs until cancelled (SIGINT or SIGTERM, see `covey.cli.daemon`), then
closes its connections, its adverts and the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc

from covey.core import Rng, discovery
from covey.core.group import Group
from covey.core.identity import DeviceRecord, Identity
from covey.core.sync import SyncSession
from covey.net.discovery import Advertiser, Browser, Seen, local_addresses, open_zeroconf
from covey.net.tcp import SESSION_TIMEOUT, Channel, handshake
from covey.runtime.syncer import sync_once
from covey.store.sqlite import Store

log = logging.getLogger("covey.daemon")

#: Seconds between two syncs with the same device when nothing changed.
SYNC_INTERVAL: Final = 30.0
#: Seconds between two looks at the store (local changes) and the LAN.
TICK: Final = 1.0
#: Seconds each rank in the seniority order waits before healing a group.
HEAL_DELAY: Final = 30.0
#: Connections served at once; more are closed at once, not queued.
MAX_CONNECTIONS: Final = 16
#: Connections served at once from one address (so one host cannot take them all).
MAX_PER_ADDRESS: Final = 2
#: Devices dialed at once, and the seconds one dial (connect, handshake,
#: sync) may take before the next advert's turn.
MAX_DIALS: Final = 4
DIAL_TIMEOUT: Final = 60.0
CONNECT_TIMEOUT: Final = 3.0


@dataclass
class Daemon:
    """One device's running node."""

    store: Store
    me: Identity
    data_key: bytes
    rng: Rng
    clock: Callable[[], int]
    events: Callable[[str, dict[str, Any]], None] = lambda event, data: None
    port: int = 0
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _slots: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(MAX_CONNECTIONS))
    _per_address: dict[str, int] = field(default_factory=dict)
    _unproven: list[anyio.CancelScope] = field(default_factory=list)
    _needs_healing_since: dict[bytes, float] = field(default_factory=dict)
    _last_sync: dict[str, float] = field(default_factory=dict)
    _advert: Advertiser | None = None
    _stamp: tuple[object, ...] = ()
    _groups: dict[bytes, Group] = field(default_factory=dict)
    _store_stamp: tuple[int, int, int] | None = None

    async def groups(self) -> dict[bytes, Group]:
        """Every group, from the store; reloaded only when the store changed.

        Sessions change these objects in place and persist what they add,
        which changes the stamp, so a reload never loses anything.
        """
        async with self._lock:
            stamp = await self.store.change_stamp()
            if stamp != self._store_stamp:
                found = {}
                for group_id, _ in await self.store.list_groups():
                    found[group_id] = await self.store.load_group(group_id, self.me, self.data_key)
                self._groups, self._store_stamp = found, stamp
            return self._groups

    def _knows(self, groups: dict[bytes, Group]) -> Callable[[DeviceRecord], bool]:
        """Devices ever added to one of our groups (not this one), by record and key."""
        known = {
            device: record
            for g in groups.values()
            if g.log.state is not None
            for device, record in g.state.devices.items()
            if device != self.me.device_id.raw
        }

        def knows(record: DeviceRecord) -> bool:
            return known.get(record.device_id.raw) == record

        knows.channel_keys = {r.channel_key for r in known.values()}  # type: ignore[attr-defined]
        return knows

    async def run(self, ready: Callable[[int], None] | None = None) -> None:
        listener = await anyio.create_tcp_listener(local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        zc = open_zeroconf()
        browser = Browser(zc, keep=self._recognized)
        try:
            async with anyio.create_task_group() as tg:
                # One accept loop per socket (IPv4 and IPv6 when both exist).
                for socket_listener in getattr(listener, "listeners", [listener]):
                    tg.start_soon(self._serve, socket_listener, tg)
                await browser.start()
                await self._refresh_advert(zc)
                self.events("listening", {"port": self.port})
                if ready is not None:
                    ready(self.port)
                while True:
                    await self._heal()
                    await self._refresh_advert(zc)
                    await self._dial(browser)
                    await anyio.sleep(TICK)
        finally:
            with anyio.CancelScope(shield=True):
                if self._advert is not None:
                    await self._advert.stop()
                await browser.stop()
                await zc.async_close()
                await listener.aclose()

    async def _refresh_advert(self, zc: Any) -> None:
        groups = await self.groups()
        now = self.clock()
        tags = [
            t
            for g in groups.values()
            if g.log.state is not None
            for t in discovery.advert_tags(g, now)
        ]
        # A new advert when the hour turns, when a log changed (new tags, and
        # peers should hear of it) or when this host's addresses changed.
        stamp = (
            now // discovery.HOUR,
            *sorted(len(g.log) for g in groups.values()),
            *local_addresses(),
        )
        if self._advert is not None and stamp == self._stamp:
            return
        if self._advert is not None:
            await self._advert.stop()
            self._last_sync.clear()  # our log changed: tell everyone
        self._advert = Advertiser(zc, self.port, tags[: discovery.MAX_TAGS])
        await self._advert.start()
        self._stamp = stamp

    async def _heal(self) -> None:
        """Rotate a group whose current key is not held by exactly its members.

        The most senior member heals at once; the one ranked k waits
        k x HEAL_DELAY seconds from when it first saw the need, unless a
        healing rotation arrives first (PROTOCOL.md, "Who heals").
        """
        for group in (await self.groups()).values():
            if group.log.state is None or not group.state.needs_healing:
                self._needs_healing_since.pop(group.id, None)
                continue
            rank = group.healer_rank()
            if rank is None:
                continue
            since = self._needs_healing_since.setdefault(group.id, anyio.current_time())
            if anyio.current_time() - since < rank * HEAL_DELAY:
                continue
            async with self._lock:
                if group.heal(self.clock(), self.rng) is not None:
                    await self.store.save_group(group, self.data_key, self.rng)
                    self.events("healed", {"group": group.state.name})
            self._needs_healing_since.pop(group.id, None)

    def _recognized(self, seen: Seen) -> bool:
        now = self.clock()
        return any(discovery.recognizes(g, seen.tags, now) for g in self._groups.values())

    async def _dial(self, browser: Browser) -> None:
        """Sync with every recognized advert that is due, a few at a time.

        Each dial has its own deadline, so adverts with copied tags that point
        at silent hosts cost seconds, in parallel, not minutes in a row.
        """
        own = self._advert.info.name if self._advert else None
        groups = await self.groups()
        now = self.clock()
        due = []
        for seen in list(browser.seen.values()):
            if seen.name == own:
                continue
            if not any(discovery.recognizes(g, seen.tags, now) for g in groups.values()):
                continue
            last = self._last_sync.get(seen.name)
            if last is not None and anyio.current_time() - last < SYNC_INTERVAL:
                continue
            self._last_sync[seen.name] = anyio.current_time()
            due.append(seen)
        limiter = anyio.CapacityLimiter(MAX_DIALS)

        async def dial(seen: Seen) -> None:
            async with limiter:
                with anyio.move_on_after(DIAL_TIMEOUT):
                    await self._dial_one(seen, groups)

        async with anyio.create_task_group() as tg:
            for seen in due:
                tg.start_soon(dial, seen)

    async def _dial_one(self, seen: Seen, groups: dict[bytes, Group]) -> None:
        for address in seen.addresses:
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    stream = await anyio.connect_tcp(address, seen.port)
            except (OSError, TimeoutError):
                continue
            async with stream:
                await self._session(stream, groups, initiator=True, address=address)
            return

    async def _serve(self, listener: Any, tg: anyio.abc.TaskGroup) -> None:
        """Accept connections; one that finds no free slot is closed at once.

        Running out of file descriptors (a flood of connections) pauses
        accepting for a moment instead of stopping the node.
        """
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                self.events("accept_failed", {"reason": str(exc)[:200]})
                await anyio.sleep(0.5)
                continue
            try:
                address = str(stream.extra(anyio.abc.SocketAttribute.remote_address)[0])
            except (IndexError, TypeError, OSError):
                address = "?"
            if self._per_address.get(address, 0) >= MAX_PER_ADDRESS:
                await stream.aclose()
                continue
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                # Full: make room by dropping the oldest connection that has
                # not yet proven who it is (a known device always gets in
                # while strangers merely hold connections open).
                if not self._unproven:
                    await stream.aclose()
                    continue
                self._unproven.pop(0).cancel()
                await self._slots.acquire()
            self._per_address[address] = self._per_address.get(address, 0) + 1
            tg.start_soon(self._accept, stream, address)

    async def _accept(self, stream: anyio.abc.SocketStream, address: str) -> None:
        scope = anyio.CancelScope()
        self._unproven.append(scope)
        try:
            with scope:
                async with stream:
                    await self._session(
                        stream, await self.groups(), initiator=False, address=address, scope=scope
                    )
        finally:
            if scope in self._unproven:
                self._unproven.remove(scope)
            self._slots.release()
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]

    async def _session(
        self,
        stream: Any,
        groups: dict[bytes, Group],
        *,
        initiator: bool,
        address: str,
        scope: anyio.CancelScope | None = None,
    ) -> None:
        """One authenticated sync, bounded in time; any failure closes this connection only."""
        try:
            with anyio.fail_after(SESSION_TIMEOUT):
                await self._sync(stream, groups, initiator=initiator, address=address, scope=scope)
        except Exception as exc:  # nothing a peer sends may stop the node
            self.events("connection_failed", {"address": address, "reason": str(exc)[:200]})

    async def _sync(
        self,
        stream: Any,
        groups: dict[bytes, Group],
        *,
        initiator: bool,
        address: str,
        scope: anyio.CancelScope | None,
    ) -> None:
        channel: Channel = await handshake(
            stream, self.me, initiator=initiator, rng=self.rng, knows=self._knows(groups)
        )
        if scope is not None and scope in self._unproven:
            self._unproven.remove(scope)  # a known device: no longer first to be dropped
        peer = channel.peer
        session = SyncSession(groups, peer.device_id.raw)

        async def persist(changed: set[bytes]) -> None:
            async with self._lock:
                for group_id in changed:
                    await self.store.save_group(groups[group_id], self.data_key, self.rng)

        report = await sync_once(channel, session, persist)
        async with self._lock:
            await self.store.record_peer(
                peer.device_id.raw, peer.name, address, self.clock(), self.clock()
            )
        self.events(
            "synced",
            {
                "peer": peer.name,
                "address": address,
                "changed": len(report.changed),
                "refused": len(report.refused),
            },
        )
