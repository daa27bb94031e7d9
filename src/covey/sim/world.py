"""The simulator's engine: real nodes on one virtual clock, driven by a seed.

A `World` holds simulated devices, each running the unmodified
`covey.core.node.Node` with an in-memory store (`covey.sim.store`), on a
simulated network (`covey.sim.network`). One priority queue of timed events
drives everything; ties break by insertion order, so a seed gives one
history. The world carries out a node's effects as the daemon does (persist
then send), except where a planted fault (`covey.sim.mutants`) says
otherwise, and it may crash a device between two effects of a batch; the
device restarts from what its store holds.

After every step (one event handled by one node) the invariants
(`covey.sim.invariants`) are checked; the first violation stops the run.
Every step is written to the trace, whose BLAKE2b digest identifies the
run: the same seed gives the same digest on every machine.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, NodeConfig, io
from covey.core.ops import Op
from covey.relay import session
from covey.sim.dealing import seeded_dealer
from covey.sim.network import Faults, Network
from covey.sim.rand import Rand, Stream
from covey.sim.relay import HONEST, Lies, SimRelay
from covey.sim.store import MemoryStore

#: The virtual clock starts at 2026-11-01 00:00 UTC (a Sunday), so hours and
#: days line up with the uptime profiles.
EPOCH = 1_793_491_200
DAY = 86_400.0
#: Seconds between a simulated device's relay fetches: a phone-friendly 5
#: minutes (`covey up` checks every minute), which keeps long runs quick.
RELAY_EVERY = 300.0
#: Lines of trace kept for the report of a violation.
TRACE_TAIL = 60


class Violation(Exception):
    """An invariant did not hold."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(eq=False)
class Device:
    index: int
    name: str
    person: str
    me: Identity
    rng: Stream
    store: MemoryStore = field(default_factory=MemoryStore)
    node: Node | None = None
    #: Whether the device is meant to be on now (its uptime profile).
    wanted_online: bool = False
    requests: int = 0
    wake_version: int = 0
    #: Stopped for good (lost in a lake): never on again, not even in the heal phase.
    gone: bool = False

    @property
    def id(self) -> bytes:
        return self.me.device_id.raw


ReplyHandler = Callable[[io.Reply], None]


class World:
    """Simulated devices, network, users and clock; see the module docstring."""

    def __init__(
        self,
        seed: int,
        homes: int,
        faults: Faults,
        *,
        send_before_persist: bool = False,
        relay_every: float = RELAY_EVERY,
    ) -> None:
        self.seed = seed
        self.rand = Rand(seed, "world")
        self.faults = faults
        self.send_before_persist = send_before_persist
        self.relay_every = relay_every
        self.now = float(EPOCH)
        self.network = Network(homes, Rand(seed, "network"), faults, self._schedule_event)
        self.devices: list[Device] = []
        #: Network index -> the device or relay there.
        self._at: dict[int, Device] = {}
        self.relays: dict[int, SimRelay] = {}
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = 0
        self.steps = 0
        self._trace = hashlib.blake2b(digest_size=32)
        self.tail: deque[str] = deque(maxlen=TRACE_TAIL)
        self._replies: dict[tuple[int, int], ReplyHandler] = {}
        #: Called after every step and every persist (see invariants).
        self.on_persist: list[Callable[[Device, list[tuple[bytes, Op]]], None]] = []
        self.after_step: list[Callable[[], None]] = []
        self.notices: list[tuple[float, int, str, dict[str, Any]]] = []
        self.counters: dict[str, int] = {}
        #: Whether each device proposes its `person` to its groups (`covey init
        #: --person`), as the recovery scenarios need: shares are per person.
        self.persons = False

    # --- building -----------------------------------------------------------------

    def add_device(self, name: str, person: str, home: int) -> Device:
        index = self.network.add_device(home)
        me = create_identity(name, EPOCH, Stream(self.seed, f"identity:{name}"))
        device = Device(index, name, person, me, Stream(self.seed, f"rng:{name}"))
        self.devices.append(device)
        self._at[index] = device
        return device

    def device_at(self, index: int) -> Device:
        return self._at[index]

    def add_relay(self, name: str, lies: Lies = HONEST) -> SimRelay:
        """A relay on the internet, up from now on (`set_relay_up`)."""
        index = self.network.add_public(name)
        seed = Stream(self.seed, f"relay:{name}")
        relay = SimRelay(
            index,
            name,
            session.RelayIdentity.from_seed(seed(32)),
            seed(32),
            Stream(self.seed, f"relay-rng:{name}"),
            Rand(self.seed, f"relay-lies:{name}"),
            lies,
        )
        self.relays[index] = relay
        self.network.set_online(index, True)
        self.trace(f"relay {name} up")
        return relay

    def set_relay_up(self, relay: SimRelay, up: bool) -> None:
        """A relay goes down (its connections break) or comes back (with what it stored)."""
        if up == relay.up:
            return
        relay.up = up
        relay.sessions.clear()
        if up:
            self.network.set_online(relay.index, True)
        else:
            self.network.down(relay.index)
        self.trace(f"relay {relay.name} {'up' if up else 'down'}")

    # --- the clock and the queue ------------------------------------------------------

    def at(self, time: float, action: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (time, self._seq, action))
        self._seq += 1

    def _schedule_event(self, device: int, incarnation: int, event: io.Event, when: float) -> None:
        self.at(when, lambda: self.deliver(device, incarnation, event))

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            time, _, action = heapq.heappop(self._queue)
            self.now = max(self.now, time)
            self.network.now = self.now
            action()
        self.now = max(self.now, end)
        self.network.now = self.now

    def trace(self, line: str) -> None:
        text = f"{self.now - EPOCH:.6f} {line}"
        self._trace.update(text.encode() + b"\n")
        self.tail.append(text)

    @property
    def trace_digest(self) -> str:
        return self._trace.hexdigest()

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    # --- devices going up and down ----------------------------------------------------

    def set_online(self, device: Device, online: bool) -> None:
        if device.gone:
            return
        device.wanted_online = online
        if online and device.node is None:
            self._start(device)
        elif not online and device.node is not None:
            self._stop(device, "went offline")

    def retire(self, device: Device) -> None:
        """The device stops for good (lost, broken): it never comes back."""
        self.set_online(device, False)
        device.gone = True
        self.trace(f"{device.name} gone for good")

    def _start(self, device: Device) -> None:
        self.network.set_online(device.index, True)
        config = NodeConfig(
            relay_every=self.relay_every,
            person=device.person if self.persons else None,
            # Shares dealt from the device's own seeded stream, so runs replay.
            dealer=seeded_dealer(device.rng),
        )
        device.node = Node(device.me, device.store.load(device.me), config)
        self.trace(f"{device.name} up")
        self.deliver(device.index, self.network.devices[device.index].incarnation, io.Tick())

    def _stop(self, device: Device, why: str) -> None:
        device.node = None
        device.wake_version += 1
        pending = sorted((k, v) for k, v in self._replies.items() if k[0] == device.index)
        self._replies = {k: v for k, v in self._replies.items() if k[0] != device.index}
        self.network.down(device.index)
        self.trace(f"{device.name} down ({why})")
        # Whoever waited on a command sees it fail (as the CLI sees the
        # node's socket close), and may try again.
        for (_, request), handler in pending:
            handler(io.Reply(request, {"message": f"the device {why}"}, error="Stopped"))

    def crash(self, device: Device) -> None:
        """The device stops at once; it comes back (from its store) a little later."""
        self.count("crashes")
        self._stop(device, "crashed")
        back = self.now + self.rand.uniform(5, 60)

        def restart() -> None:
            if device.wanted_online and device.node is None:
                self._start(device)

        self.at(back, restart)

    # --- driving a node ---------------------------------------------------------------

    def command(self, device: Device, action: io.Action, on_reply: ReplyHandler) -> bool:
        """Give a node a user's command; False if the device is off."""
        if device.node is None:
            return False
        device.requests += 1
        request = device.requests
        self._replies[(device.index, request)] = on_reply
        incarnation = self.network.devices[device.index].incarnation
        self.deliver(device.index, incarnation, io.Command(request, action))
        return True

    def deliver(self, index: int, incarnation: int, event: io.Event) -> None:
        relay = self.relays.get(index)
        if relay is not None:
            if relay.up and self.network.devices[index].incarnation == incarnation:
                self.trace(f"relay {relay.name} <- {_describe(event)}")
                for effect in relay.handle(event, self.now):
                    if isinstance(effect, io.Send):
                        self.network.send(index, effect.conn, effect.data)
                    elif isinstance(effect, io.Close):
                        self.network.close(index, effect.conn)
            return
        device = self._at[index]
        node = device.node
        if node is None or self.network.devices[index].incarnation != incarnation:
            return
        self.steps += 1
        self.trace(f"{device.name} <- {_describe(event)}")
        effects = node.handle(event, self.now, device.rng)
        self._carry_out(device, effects)
        for check in self.after_step:
            check()

    def _carry_out(self, device: Device, effects: list[io.Effect]) -> None:
        if self.send_before_persist:  # the planted fault: tell first, keep later
            effects = [e for e in effects if not isinstance(e, io.Persist)] + [
                e for e in effects if isinstance(e, io.Persist)
            ]
        crash_at = len(effects)
        if any(isinstance(e, io.Persist) for e in effects) and self.rand.chance(
            self.faults.p_crash
        ):
            crash_at = self.rand.below(len(effects) + 1)
        for i, effect in enumerate(effects):
            if device.node is None:
                return  # (stopped by something this batch set off)
            if i == crash_at:
                self.crash(device)
                return
            self._effect(device, effect)

    def _effect(self, device: Device, effect: io.Effect) -> None:
        node = device.node
        assert node is not None
        net = self.network
        index = device.index
        match effect:
            case io.Persist():
                if effect.peers:  # one per finished sync (a sync that changed
                    self.count("syncs", len(effect.peers))  # nothing notifies nothing)
                new_ops = device.store.commit(effect, node.groups)
                self.trace(f"{device.name} persist {len(new_ops)} ops")
                for check in self.on_persist:
                    check(device, new_ops)
            case io.Send(conn, data):
                self.trace(
                    f"{device.name} send {conn} {len(data)} "
                    f"{hashlib.blake2b(data, digest_size=8).hexdigest()}"
                )
                net.send(index, conn, data)
            case io.Dial(conn, addresses, _):
                self.trace(f"{device.name} dial {conn} {addresses[0]}")
                net.dial(index, conn, addresses)
            case io.Close(conn):
                net.close(index, conn)
            case io.Advertise(name, txt):
                self.trace(f"{device.name} advertise {name[:8]} {len(txt)} bytes")
                net.advertise(index, name, txt)
            case io.Withdraw(name):
                net.withdraw(index, name)
            case io.WakeAt(time):
                device.wake_version += 1
                version = device.wake_version
                incarnation = net.devices[index].incarnation

                def wake() -> None:
                    if device.wake_version == version:
                        self.deliver(index, incarnation, io.Tick())

                self.at(max(time, self.now), wake)
            case io.Notify(event, data):
                self.trace(f"{device.name} notify {event} {_brief(data)}")
                self.notices.append((self.now, index, event, data))
                self.count(f"notify:{event}")
                if event == "internal_error":
                    raise Violation("no-internal-error", f"{device.name}: {data}")
            case io.Reply(request, data, final, error):
                self.trace(f"{device.name} reply {request} {error or ''} {_brief(data)}")
                handler = self._replies.get((index, request))
                if final:
                    self._replies.pop((index, request), None)
                if handler is not None:
                    # The user reacts after this batch of effects, not inside it.
                    self.at(self.now, partial(handler, effect))

    # --- reading state ------------------------------------------------------------------

    def group_of(self, device: Device, group_id: bytes) -> Group | None:
        """The device's live replica (or, when it is off, what its store holds)."""
        if device.node is not None:
            return device.node.groups.get(group_id)
        stored = device.store.groups.get(group_id)
        if stored is None:
            return None
        group = Group.replica(device.me, group_id, stored.ops)
        group.keys.update(stored.keys)
        return group


def _describe(event: io.Event) -> str:
    match event:
        case io.Received(conn, data):
            return f"recv {conn} {len(data)} {hashlib.blake2b(data, digest_size=8).hexdigest()}"
        case io.Command(request, action):
            return f"command {request} {type(action).__name__}"
        case io.AdvertSeen(name, _, _, txt):
            return f"advert {name[:8]} {len(txt)} bytes"
        case io.AdvertLost(name):
            return f"advert-lost {name[:8]}"
        case _:
            return repr(event)


def _brief(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(data.items()) if k not in ("link", "code"))
