"""Pairing through a relay: a byte stream between joiner and inviter, carried by a segment.

DESIGN (PROTOCOL.md 18.6). Two devices that are online at the same time
but on different networks pair exactly as on a LAN (the same `JoinLink`
and `InviteLink`, the same six messages, the same one guess per attempt),
over a *virtual connection*: its bytes go as `TunnelItem`s into a
rendezvous segment at one of the group's relays, which both sides read
every `POLL_EVERY` seconds. The segment's token comes from the
invitation's number and the relay's key (a code: the number is not
secret, as magic-wormhole's nameplate is not), or from a link's key; the
code's words never reach the relay in any form, and what the relay
carries is the pairing handshake, which gives whoever sees or changes it
one online guess per attempt and nothing offline (section 15).

A joiner draws a session ID per attempt; an inviter answers every session
it sees (at most `MAX_SESSIONS` per rendezvous), each as a connection of
its own. Items carry a sequence number per session and sender, so a relay
that replays, drops or reorders them can break a pairing (the user tries
again), never splice two. Both sides see their own items too, and skip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from covey.core import Rng, relayitems
from covey.core.node.io import ConnId, Effect
from covey.core.node.relays import OnRelay
from covey.core.ops import AddRelay
from covey.core.relayitems import TunnelItem
from covey.errors import MalformedMessage, RelayNothingThere, RelayRefused
from covey.relay import client, session
from covey.relay.client import Ready

#: Seconds between reads of the rendezvous segment.
POLL_EVERY: Final = 0.5
#: Sessions one inviter's rendezvous runs at once (each a joiner's attempt).
MAX_SESSIONS: Final = 8
#: Items of one session held back waiting for an earlier one (a relay's reorder).
MAX_HELD: Final = 16
#: Sessions an inviter remembers having ended (their late items are ignored).
MAX_ENDED: Final = 64
#: Seconds a pairing through a relay has to finish (each message waits for
#: the other side's next read: `POLL_EVERY`, plus the relay's round trips).
PAIRING_TIMEOUT: Final = 60.0
#: Seconds before an inviter waits at a relay again after its connection broke.
REDIAL_AFTER: Final = 5.0

Role = Literal["i", "j"]


class TunnelHost(Protocol):
    """What a rendezvous asks of its node."""

    def tunnel_ready(self, rendezvous: Rendezvous, out: list[Effect]) -> None:
        """The relay proved its key: a joiner may start its attempt."""
        ...

    def tunnel_opened(self, rendezvous: Rendezvous, session: bytes, out: list[Effect]) -> None:
        """A joiner's session appeared (the inviter's side)."""
        ...

    def tunnel_data(
        self, rendezvous: Rendezvous, session: bytes, data: bytes, out: list[Effect]
    ) -> None: ...

    def tunnel_closed(self, rendezvous: Rendezvous, session: bytes, out: list[Effect]) -> None:
        """The other side ended the session."""
        ...


@dataclass
class Stream:
    """One session's two directions."""

    token: bytes
    sent: int = 0
    received: int = 0
    held: dict[int, TunnelItem] = field(default_factory=dict)


class Rendezvous(OnRelay):
    """One side's connection to a rendezvous at a relay, for one invitation or join."""

    def __init__(
        self,
        host: TunnelHost,
        conn: ConnId,
        now: float,
        relay: AddRelay,
        tokens: list[bytes],
        role: Role,
        until: float,
        rng: Rng,
    ) -> None:
        super().__init__(conn, now, relay, rng)
        self.host = host
        self.role = role
        self.until = until
        #: Write token -> how far its segment was read.
        self.cursors: dict[bytes, int] = dict.fromkeys(tokens, 0)
        self.streams: dict[bytes, Stream] = {}
        self.ended: dict[bytes, None] = {}
        self.next_poll: float | None = None
        self.polling = False
        self.closing = False

    def deadline(self) -> float:
        if not self.proven:
            return super().deadline()
        return self.until

    def settles(self) -> bool:
        # Never on its own: what it still has to say for its sessions is routed
        # after the event (`Node._route_virtual`), and the node closes it then
        # (`Node._leave_settled_meetings`): a welcome was lost otherwise.
        return False

    def ready(self, ready: Ready, out: list[Effect]) -> None:
        self.ask("access", self._check, secret=self.relay.access)
        self.host.tunnel_ready(self, out)
        self.poll(self.now, out)

    def _check(self, value: Any) -> None:
        if isinstance(value, RelayRefused):
            raise value

    # --- reading ------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return (
            self.proven
            and not self.polling
            and not self.closing
            and self.next_poll is not None
            and now >= self.next_poll
        )

    def poll(self, now: float, out: list[Effect]) -> None:
        """Read every rendezvous segment past its cursor."""
        self.now = now
        self.out = out
        self.polling = True
        self.next_poll = None
        waiting = len(self.cursors)

        for token, after in self.cursors.items():

            def answered(value: Any, token: bytes = token) -> None:
                nonlocal waiting
                if isinstance(value, RelayRefused) and not isinstance(value, RelayNothingThere):
                    raise value  # (a rendezvous nobody wrote to yet is unknown: fine)
                if not isinstance(value, RelayRefused):
                    items, _ = client.read_items(value)
                    for number, item in items:
                        self.cursors[token] = max(self.cursors[token], number)
                        self._item(token, item)
                waiting -= 1
                if not waiting:
                    self.polling = False
                    self.next_poll = self.now + POLL_EVERY

            self.ask("mirror-get", answered, read=session.read_token(token), after=after)

    def _item(self, token: bytes, data: bytes) -> None:
        try:
            item = TunnelItem.from_bytes(data)
        except MalformedMessage:
            return  # (junk in a segment anyone near the code's number can write)
        if item.sender == self.role or item.session in self.ended:
            return
        stream = self.streams.get(item.session)
        if stream is None:
            if self.role == "j" or len(self.streams) >= MAX_SESSIONS or item.seq != 1:
                return  # a joiner has only its own sessions; an inviter takes new ones
            stream = self.streams[item.session] = Stream(token)
            self.host.tunnel_opened(self, item.session, self.out)
        if item.seq <= stream.received or len(stream.held) >= MAX_HELD:
            return  # a replay (or a relay holding back too much: the pairing times out)
        stream.held[item.seq] = item
        while stream.received + 1 in stream.held:
            piece = stream.held.pop(stream.received + 1)
            stream.received += 1
            if piece.data:
                self.host.tunnel_data(self, piece.session, piece.data, self.out)
            if piece.end:
                self._forget(piece.session)
                self.host.tunnel_closed(self, piece.session, self.out)
                return
            if piece.session not in self.streams:
                return  # (the node ended it while taking the data)

    # --- writing ------------------------------------------------------------------------

    def open(self, session_id: bytes) -> None:
        """A joiner's new session, on its one segment."""
        (token,) = self.cursors
        self.streams[session_id] = Stream(token)

    def send_data(self, session_id: bytes, data: bytes, now: float, out: list[Effect]) -> None:
        self.now = now
        stream = self.streams.get(session_id)
        if stream is None:
            return
        for start in range(0, len(data), relayitems.TUNNEL_DATA):
            self._put(session_id, stream, data[start : start + relayitems.TUNNEL_DATA], False, out)

    def end(self, session_id: bytes, now: float, out: list[Effect]) -> None:
        """This side ends the session (the other side sees the end)."""
        self.now = now
        stream = self.streams.get(session_id)
        if stream is not None:
            self._put(session_id, stream, b"", True, out)
            self._forget(session_id)

    def _put(
        self, session_id: bytes, stream: Stream, data: bytes, end: bool, out: list[Effect]
    ) -> None:
        self.out = out
        stream.sent += 1
        item = TunnelItem(session_id, self.role, stream.sent, data, end)
        ttl = max(60, int(self.until - self.now) + 60)
        self.ask("mirror-put", self._check, token=stream.token, item=item.to_bytes(), ttl=ttl)

    def _forget(self, session_id: bytes) -> None:
        self.streams.pop(session_id, None)
        self.ended[session_id] = None
        while len(self.ended) > MAX_ENDED:
            del self.ended[next(iter(self.ended))]
