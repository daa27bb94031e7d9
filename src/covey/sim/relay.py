"""A relay in the simulator: the real `RelaySession` and reference store, on the virtual network.

A relay is on the internet: every device that is online reaches it, from
any home (`Network.add_public`). It runs the relay's pure session per
connection and `covey.relay.store.MemoryStore`, exactly as the relay
process does (`covey.relay.server`), on the simulation's clock; it can go
down and come back with what it stored (a restart loses nothing).

A lying relay (`Lies`) does what a hostile or broken relay can: it drops
items put into it, serves items again (replays), serves them out of
order, or flips a byte of what it serves. Devices must only be delayed by
it, never misled: the invariants hold whatever it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from covey.core.node import io
from covey.errors import RelayNotAllowed, RelayRefused
from covey.relay import session
from covey.relay import store as relaystore
from covey.relay.limits import DEFAULT_LIMITS
from covey.sim.rand import Rand, Stream


@dataclass(frozen=True)
class Lies:
    """What a hostile relay does, each with a probability per item or page."""

    #: An item put (into an inbox or the mirror) is answered as stored, and thrown away.
    drop: float = 0.0
    #: A page served again holds items already acknowledged (from a copy kept).
    replay: float = 0.0
    #: A page's items are served in another order.
    reorder: float = 0.0
    #: A byte of an item served is flipped.
    tamper: float = 0.0
    #: A put into an inbox is refused as not allowed (as if the relay lost
    #: the inbox's writers): the sender must not retry it every minute.
    refuse: float = 0.0


HONEST = Lies()


@dataclass
class SimRelay:
    index: int
    name: str
    identity: session.RelayIdentity
    access: bytes
    rng: Stream
    rand: Rand
    lies: Lies = HONEST
    store: relaystore.MemoryStore = field(
        default_factory=lambda: relaystore.MemoryStore(DEFAULT_LIMITS)
    )
    sessions: dict[io.ConnId, session.RelaySession] = field(default_factory=dict)
    #: Every item ever served, for replays.
    served: list[tuple[int, bytes, int]] = field(default_factory=list)
    up: bool = True
    #: How many times it told each lie (so a test knows its lies were told).
    lied: dict[str, int] = field(default_factory=dict)

    def _lie(self, kind: str, p: float) -> bool:
        if not self.rand.chance(p):
            return False
        self.lied[kind] = self.lied.get(kind, 0) + 1
        return True

    @property
    def link(self) -> str:
        from covey.core.relaylink import RelayLink

        return str(RelayLink(self.name, PORT, self.identity.public, self.access))

    def handle(self, event: io.Event, now: float) -> list[io.Effect]:
        """One network event: the sends and closes it calls for."""
        out: list[io.Effect] = []
        match event:
            case io.Incoming(conn, _):
                self.sessions[conn] = session.RelaySession(
                    self.identity, self.store.limits, now, self.access
                )
            case io.Received(conn, data):
                relay = self.sessions.get(conn)
                if relay is not None:
                    self._run(conn, relay, relay.receive(data, now, self.rng), now, out)
            case io.Closed(conn):
                self.sessions.pop(conn, None)
        return out

    def _run(
        self,
        conn: io.ConnId,
        relay: session.RelaySession,
        outputs: list[session.Output],
        now: float,
        out: list[io.Effect],
    ) -> None:
        while outputs:
            output = outputs.pop(0)
            if isinstance(output, session.End):
                self.sessions.pop(conn, None)
                out.append(io.Close(conn))
                return
            if isinstance(output, session.Send):
                out.append(io.Send(conn, output.data))
                continue
            if isinstance(output, session.Hold):  # (waits are not simulated: answered now)
                outputs += relay.wake(output.number, now, woken=False)
                continue
            result: relaystore.Result | RelayRefused
            try:
                result = self._execute(output.action, int(now))
            except RelayRefused as refusal:
                result = refusal
            # (after what is queued, not before: Noise nonces count up in that order)
            outputs += relay.answer(output.number, result)

    def _execute(self, action: relaystore.Action, now: int) -> relaystore.Result:
        lies = self.lies
        if isinstance(action, (relaystore.InboxPut, relaystore.MirrorPut)) and self._lie(
            "drop", lies.drop
        ):
            return relaystore.Stored(1)  # (a lie: nothing is kept)
        if isinstance(action, relaystore.InboxPut) and self._lie("refuse", lies.refuse):
            raise RelayNotAllowed()
        result = self.store.execute(action, now)
        if isinstance(result, relaystore.Items) and result.items:
            items = list(result.items)
            self.served += items
            if self._lie("replay", lies.replay):
                items = [self.served[self.rand.below(len(self.served))], *items]
                items.sort(key=lambda item: item[0])
                items = [i for k, i in enumerate(items) if not k or i[0] != items[k - 1][0]]
            if self._lie("reorder", lies.reorder):
                items.reverse()
            if self._lie("tamper", lies.tamper):
                k = self.rand.below(len(items))
                number, data, expires = items[k]
                flip = self.rand.below(len(data))
                data = data[:flip] + bytes([data[flip] ^ 1]) + data[flip + 1 :]
                items[k] = (number, data, expires)
            result = relaystore.Items(tuple(items), result.more)
        return result


#: The port relays listen on in the simulation (any: the network routes by name).
PORT = 4433
