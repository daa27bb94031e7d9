"""Real drivers on real TCP over 127.0.0.1, with an in-process advert bus for mDNS.

`Bus` is the `Lan` of every device of one test: an advert one driver
publishes is delivered to all the others (with 127.0.0.1 as its address),
as mDNS would on a LAN, without multicast. Everything else is what `covey
up` runs: the pure node, the driver, TCP sockets and a SQLite store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from covey.core import crypto
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, NodeConfig, io
from covey.runtime.driver import Driver
from covey.store.sqlite import Store
from tests.conftest import NOW, SeededRng

FAST = {"opslimit": crypto.ARGON2_OPSLIMIT_RANGE[0], "memlimit": crypto.ARGON2_MEMLIMIT_RANGE[0]}
SERVE = NodeConfig()
Post = Callable[[io.Event], Coroutine[Any, Any, None]]


@dataclass
class Bus:
    """Adverts shared by the drivers of one test."""

    listeners: list[Post] = field(default_factory=list)
    adverts: dict[str, io.AdvertSeen] = field(default_factory=dict)

    def lan(self) -> BusLan:
        return BusLan(self)


@dataclass
class BusLan:
    bus: Bus
    post: Post | None = None

    async def start(self, post: Post, tg: anyio.abc.TaskGroup) -> None:
        self.post = post
        self.bus.listeners.append(post)
        # In tasks: the driver takes events only once `start` has returned
        # (awaiting them here waited forever when adverts were already up).
        for advert in list(self.bus.adverts.values()):
            tg.start_soon(post, advert)

    async def advertise(self, name: str, port: int, txt: bytes) -> None:
        advert = io.AdvertSeen(name, ("127.0.0.1",), port, txt)
        self.bus.adverts[name] = advert
        for post in list(self.bus.listeners):
            await post(advert)

    async def withdraw(self, name: str) -> None:
        if self.bus.adverts.pop(name, None) is not None:
            for post in list(self.bus.listeners):
                await post(io.AdvertLost(name))

    async def close(self) -> None:
        if self.post in self.bus.listeners:
            self.bus.listeners.remove(self.post)


@dataclass
class Device:
    """One device of a loopback test: identity, store, running driver."""

    me: Identity
    home: Path
    store: Store
    driver: Driver | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def node(self) -> Node:
        """The running node: read it inside `quiet(...)` (it runs in a worker thread)."""
        assert self.driver is not None
        return self.driver.node

    async def command(self, action: io.Action, timeout: float = 20) -> list[io.Reply]:
        """Run a command to its final reply; all replies."""
        assert self.driver is not None
        got: list[io.Reply] = []
        with anyio.fail_after(timeout):
            async with self.driver.request(action) as replies:
                async for reply in replies:
                    got.append(reply)
                    if reply.final:
                        break
        return got

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == event]


@asynccontextmanager
async def running(
    tmp: Path, names: Sequence[str], *, bus: Bus | None = None, config: NodeConfig = SERVE
) -> AsyncIterator[list[Device]]:
    """Devices named `names`, each with its store (new, or as a test left it) and driver."""
    bus = bus or Bus()
    async with AsyncExitStack() as stack:
        stores = []
        for name in names:
            store = await stack.enter_async_context(Store.open(tmp / name, create=True))
            if not await store.has_identity():
                me = create_identity(name, NOW, SeededRng(f"id-{name}"))
                await store.create_identity(me, None, SeededRng(f"ring-{name}"), **FAST)
            stores.append((tmp / name, store))
        async with anyio.create_task_group() as tg:
            devices = [await start(tg, home, store, bus, config) for home, store in stores]
            yield devices
            tg.cancel_scope.cancel()


async def start(
    tg: anyio.abc.TaskGroup, home: Path, store: Store, bus: Bus, config: NodeConfig
) -> Device:
    """Run a driver for the device whose store is `store`, with the groups it holds."""
    identity, data_key = await store.open_identity(None)
    groups = [
        await store.load_group(group_id, identity, data_key)
        for group_id, _ in await store.list_groups()
    ]
    device = Device(identity, home, store)
    device.driver = Driver(
        Node(identity, groups, config),
        store,
        data_key,
        SeededRng(f"driver-{identity.record.name}-{len(groups)}"),
        time.time,
        bus.lan(),
        lambda event, data: device.events.append((event, data)),
        port=0,
        host="127.0.0.1",
    )
    started = anyio.Event()
    tg.start_soon(device.driver.run, lambda port: started.set())
    await started.wait()
    return device


@contextlib.contextmanager
def quiet(*devices: Device) -> Iterator[None]:
    """Hold the nodes still (between events) to read their state from a test."""
    with contextlib.ExitStack() as stack:
        for device in devices:
            if device.driver is not None:
                stack.enter_context(device.driver.lock)
        yield


async def wait_until(check: Callable[[], bool], *devices: Device, timeout: float = 20) -> None:
    """Wait until `check()` holds, reading the devices' nodes between their events."""
    with anyio.fail_after(timeout):
        while True:
            with quiet(*devices):
                if check():
                    return
            await anyio.sleep(0.02)
