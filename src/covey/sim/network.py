"""The simulated network: homes (LANs), who is online where, adverts, TCP streams.

A device is online in one home at a time. Devices see each other's adverts
(mDNS) and can connect when they are online in the same home, or in two
homes that are linked at the time (a VPN, a bridge: one multicast domain).
A stream between two devices keeps TCP's promise (bytes arrive in order,
once) unless a fault is injected: it may break (both ends learn it closed),
or a piece may be dropped, duplicated or garbled, which the Noise layer must
turn into a cleanly closed connection. When two connected devices stop
being reachable (one goes offline, moves, or a link goes down) their
connections break.

The network knows nothing of covey's protocol: it moves bytes and adverts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from covey.core.node import io
from covey.sim.rand import Rand

#: The port every simulated node listens on.
PORT = 4242
#: Seconds a dial to an address nobody answers takes to fail.
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Faults:
    """How unreliable the network and the devices are (probabilities per event)."""

    latency: float = 0.002
    jitter: float = 0.003
    mdns_delay: float = 0.05
    #: Per piece of data sent: the connection breaks.
    p_break: float = 0.0
    #: Per piece of data sent: it is dropped, duplicated or has a byte flipped.
    p_drop: float = 0.0
    p_duplicate: float = 0.0
    p_garble: float = 0.0
    #: Per batch of effects holding a Persist: the device crashes somewhere in it.
    p_crash: float = 0.0
    #: Seconds a device's adverts stay in the others' mDNS caches after it
    #: goes off without a goodbye (a crash, a laptop closed, a phone that
    #: left the Wi-Fi): each is seen as lost only after up to this long
    #: (drawn per advert). Real mDNS keeps them for the record's TTL, 75
    #: minutes with python-zeroconf. Meanwhile dials to them reach nothing.
    advert_linger: float = 0.0


QUIET = Faults()


@dataclass
class Pipe:
    """One direction of a stream: where it goes and when its last byte lands."""

    device: int
    conn: io.ConnId
    last: float = 0.0


@dataclass
class NetDevice:
    online: bool = False
    incarnation: int = 0
    home: int = 0
    next_conn: int = 1
    #: Adverts it publishes: name -> TXT record.
    adverts: dict[str, bytes] = field(default_factory=dict)
    #: Adverts delivered to it: name -> owner.
    seen: dict[str, int] = field(default_factory=dict)
    #: On the internet (a relay): every online device reaches it, by `name`.
    public: bool = False
    name: str = ""


Deliver = Callable[[int, int, io.Event, float], None]


class Network:
    """Moves bytes and adverts between simulated devices, with faults."""

    def __init__(self, homes: int, rand: Rand, faults: Faults, deliver: Deliver) -> None:
        self.homes = homes
        self.rand = rand
        self.faults = faults
        self._deliver = deliver
        self.devices: list[NetDevice] = []
        #: Pairs of linked homes.
        self.links: set[tuple[int, int]] = set()
        #: (device, conn) -> the other end.
        self.pipes: dict[tuple[int, io.ConnId], Pipe] = {}
        self.bytes_sent = 0
        self.now = 0.0
        #: Adverts of devices gone off without a goodbye -> until when the
        #: others' caches keep them (`Faults.advert_linger`).
        self.lingering: dict[str, float] = {}

    # --- topology ---------------------------------------------------------------

    def add_device(self, home: int) -> int:
        self.devices.append(NetDevice(home=home))
        return len(self.devices) - 1

    def add_public(self, name: str) -> int:
        """A host on the internet (a relay), reached by its name from every home."""
        self.devices.append(NetDevice(public=True, name=name))
        return len(self.devices) - 1

    def address(self, device: int) -> str:
        d = self.devices[device]
        return d.name if d.public else f"10.{d.home}.0.{device + 1}"

    def reachable(self, a: int, b: int) -> bool:
        da, db = self.devices[a], self.devices[b]
        if not (da.online and db.online):
            return False
        if da.public or db.public:
            return True
        return da.home == db.home or (min(da.home, db.home), max(da.home, db.home)) in self.links

    def set_online(self, device: int, online: bool) -> None:
        d = self.devices[device]
        if d.online == online:
            return
        d.online = online
        if online:
            d.incarnation += 1
            d.next_conn = 1
        else:
            if self.faults.advert_linger > 0:
                for name in d.adverts:
                    self.lingering[name] = self.now + self.rand.uniform(
                        0, self.faults.advert_linger
                    )
            d.adverts.clear()
            d.seen.clear()
        self.changed()

    def move(self, device: int, home: int) -> None:
        self.devices[device].home = home
        self.changed()

    def link(self, a: int, b: int, up: bool) -> None:
        pair = (min(a, b), max(a, b))
        if up:
            self.links.add(pair)
        else:
            self.links.discard(pair)
        self.changed()

    def changed(self) -> None:
        """After any change of who is where: break what no longer reaches, show adverts."""
        for (device, conn), pipe in list(self.pipes.items()):
            if not self.reachable(device, pipe.device):
                self._break(device, conn, "the network went away")
        for observer, d in enumerate(self.devices):
            if not d.online or d.public:  # (mDNS stays on the LANs)
                continue
            visible = {
                name: owner
                for owner, o in enumerate(self.devices)
                if owner != observer and not o.public and self.reachable(observer, owner)
                for name in o.adverts
            }
            for name in [n for n in d.seen if n not in visible]:
                del d.seen[name]
                until = self.lingering.get(name, 0.0)
                self._event(
                    observer, io.AdvertLost(name), max(self.faults.mdns_delay, until - self.now)
                )
            for name, owner in visible.items():
                if name not in d.seen:
                    d.seen[name] = owner
                    self._advert_to(observer, owner, name)
        self.lingering = {n: t for n, t in self.lingering.items() if t > self.now}

    # --- adverts ------------------------------------------------------------------

    def advertise(self, owner: int, name: str, txt: bytes) -> None:
        self.devices[owner].adverts[name] = txt
        for observer, d in enumerate(self.devices):
            if observer != owner and d.online and not d.public and self.reachable(observer, owner):
                d.seen[name] = owner
                self._advert_to(observer, owner, name)

    def withdraw(self, owner: int, name: str) -> None:
        self.devices[owner].adverts.pop(name, None)
        for observer, d in enumerate(self.devices):
            if d.seen.pop(name, None) is not None:
                self._event(observer, io.AdvertLost(name), self.faults.mdns_delay)

    def _advert_to(self, observer: int, owner: int, name: str) -> None:
        txt = self.devices[owner].adverts[name]
        event = io.AdvertSeen(name, (self.address(owner),), PORT, txt)
        self._event(observer, event, self.rand.uniform(0.001, self.faults.mdns_delay))

    # --- streams --------------------------------------------------------------------

    def _event(self, device: int, event: io.Event, delay: float) -> None:
        self._deliver(device, self.devices[device].incarnation, event, self.now + delay)

    def _delay(self) -> float:
        return self.faults.latency + self.rand.uniform(0, self.faults.jitter)

    def dial(self, device: int, conn: io.ConnId, addresses: tuple[str, ...]) -> None:
        target = next(
            (
                t
                for t in range(len(self.devices))
                if self.address(t) in addresses and t != device and self.reachable(device, t)
            ),
            None,
        )
        if target is None:
            self._event(device, io.Closed(conn, "connect failed"), CONNECT_TIMEOUT)
            return
        t = self.devices[target]
        theirs = t.next_conn
        t.next_conn += 1
        rtt = 2 * self._delay()
        self.pipes[(device, conn)] = Pipe(target, theirs, self.now + rtt)
        self.pipes[(target, theirs)] = Pipe(device, conn, self.now + rtt)
        self._event(target, io.Incoming(theirs, self.address(device)), rtt / 2)
        self._event(device, io.Connected(conn, self.address(target)), rtt)

    def send(self, device: int, conn: io.ConnId, data: bytes) -> None:
        pipe = self.pipes.get((device, conn))
        if pipe is None:
            return
        self.bytes_sent += len(data)
        f = self.faults
        if self.rand.chance(f.p_break):
            self._break(device, conn, "connection reset")
            return
        if self.rand.chance(f.p_drop):
            return
        if data and self.rand.chance(f.p_garble):
            i = self.rand.below(len(data))
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]
        copies = 2 if self.rand.chance(f.p_duplicate) else 1
        for _ in range(copies):
            self._along(pipe, io.Received(pipe.conn, data))

    def _along(self, pipe: Pipe, event: io.Event) -> None:
        """Deliver in order: never before what was sent earlier on this pipe."""
        when = max(self.now + self._delay(), pipe.last + 1e-6)
        pipe.last = when
        self._deliver(pipe.device, self.devices[pipe.device].incarnation, event, when)

    def close(self, device: int, conn: io.ConnId) -> None:
        pipe = self.pipes.pop((device, conn), None)
        if pipe is None:
            return
        back = self.pipes.pop((pipe.device, pipe.conn), None)
        if back is not None:
            self._along(pipe, io.Closed(pipe.conn, "closed by the peer"))

    def _break(self, device: int, conn: io.ConnId, reason: str) -> None:
        pipe = self.pipes.pop((device, conn), None)
        if pipe is None:
            return
        self.pipes.pop((pipe.device, pipe.conn), None)
        self._event(device, io.Closed(conn, reason), self._delay())
        self._along(pipe, io.Closed(pipe.conn, reason))

    def down(self, device: int) -> None:
        """The device stopped (offline or crashed): its streams break, its adverts go."""
        for d, conn in [k for k in self.pipes if k[0] == device]:
            pipe = self.pipes.pop((d, conn), None)
            if pipe is not None:
                self.pipes.pop((pipe.device, pipe.conn), None)
                self._along(pipe, io.Closed(pipe.conn, "the peer went away"))
        self.set_online(device, False)
