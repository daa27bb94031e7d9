"""A device's relay client wired to a relay session and a store, in memory.

`Pipe.call(op, **fields)` sends one request and returns its answer (or the
refusal); every byte goes through the real Noise channel both ways, and
every store action through the store's one entry point, as the relay
process does it.
"""

from __future__ import annotations

from typing import Any

from covey.errors import RelayRefused
from covey.relay import client, session, store
from covey.relay.limits import DEFAULT_LIMITS, RelayLimits
from tests.conftest import SeededRng

RELAY = session.RelayIdentity.from_seed(bytes(range(32)))
ACCESS = b"A" * 32


class Pipe:
    def __init__(
        self,
        relay_store: store.RelayStore | None = None,
        limits: RelayLimits = DEFAULT_LIMITS,
        *,
        pinned: bytes | None = None,
        seed: str = "pipe",
        now: int = 1_000_000,
        access: bool = True,
    ) -> None:
        """`access`: present the relay's access secret first (as a device with
        the relay's link does)."""
        self.store = relay_store if relay_store is not None else store.MemoryStore(limits)
        self.now = now
        self.rng = SeededRng(f"{seed}-relay")
        self.session = session.RelaySession(RELAY, limits, now, ACCESS)
        self.client = client.RelayClient(
            RELAY.public if pinned is None else pinned, SeededRng(seed)
        )
        self.ended: list[str] = []
        self.events: list[client.Event] = []
        #: Waits the session held (`session.Hold`), for `wake` to end.
        self.held: list[session.Hold] = []
        #: Inboxes the session asked to watch (`Run.watch`), in order.
        self.watched: list[bytes] = []
        self._to_client(self.session.receive(self.client.start(), now, self.rng))
        if access and self.client.ready is not None:
            assert self.call("access", secret=ACCESS) is True

    @property
    def ready(self) -> client.Ready:
        assert self.client.ready is not None
        return self.client.ready

    def _to_client(self, outputs: list[session.Output]) -> None:
        for output in outputs:
            if isinstance(output, session.Send):
                self.events += self.client.receive(output.data)
            elif isinstance(output, session.Hold):
                self.held.append(output)
            elif isinstance(output, session.Run):
                if output.watch is not None:
                    self.watched.append(output.watch)
                try:
                    result: store.Result | RelayRefused = self.store.execute(
                        output.action, self.now
                    )
                except RelayRefused as refusal:
                    result = refusal
                self._to_client(self.session.answer(output.number, result))
            else:
                self.ended.append(output.reason)

    def send_raw(self, data: bytes) -> None:
        self._to_client(self.session.receive(data, self.now, self.rng))

    def ask(self, op: str, **fields: Any) -> int:
        """Send one request; its number (what came back is in `events`)."""
        number, data = self.client.request(op, **fields)
        self.events.clear()
        self.send_raw(data)
        return number

    def wake(self, number: int, woken: bool) -> None:
        """A held wait's turn, as the relay process gives it (what came back is
        in `events`)."""
        self.held = [h for h in self.held if h.number != number]
        self.events.clear()
        self._to_client(self.session.wake(number, self.now, woken))

    def call(self, op: str, **fields: Any) -> Any:
        """The answer's value, or the RelayRefused the relay answered with."""
        number, data = self.client.request(op, **fields)
        self.events.clear()
        self.send_raw(data)
        answers = [e for e in self.events if not isinstance(e, client.Ready)]
        assert len(answers) == 1, answers
        event = answers[0]
        # (a request that does not parse is answered as number 0: it has none)
        assert event.number in (number, 0)
        if isinstance(event, client.Refused):
            return event.refusal
        assert isinstance(event, client.Answer)
        return event.value
