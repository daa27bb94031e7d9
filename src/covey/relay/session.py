"""One relay connection, relay side: a pure state machine (PROTOCOL.md section 18).

Bytes in (`receive`), outputs out: bytes to send, store actions to run, or
the end of the connection. The relay process feeds it what the socket gave,
runs each `Run` on its store (`RelayStore.execute`) and hands the result
back (`answer`), and sends what comes out; the simulator and the tests do
the same with an in-memory store. The session reads no clock and draws no
randomness of its own: `now` and `rng` are arguments.

In order: the preamble `cv1r`; the device's first Noise_NN message, which
the relay answers with its second and then, encrypted, its hello (its
proof over the handshake hash, its limits, this connection's challenge);
then requests, each answered by number. What a request needs is checked
here (an inbox owner's signature over the challenge, once per inbox and
connection; the rate), and what needs the stored state by the store (a
write token's hash, quotas, expiry). A request that does not parse is
answered `malformed` and ends the connection; every other refusal is an
answer and the connection goes on.

**Waits** (`inbox-wait`). The session decides what a wait is; the relay
process only watches and sleeps. A wait is a fetch (`Run` with `watch`: from
before the fetch runs, note puts into that inbox, so a put that commits
between the fetch and the sleep is not missed); if the page is empty the
session says `Hold` (answer later) instead of answering; the process calls
`wake(number, now, woken)` when a put into the inbox was noted (`woken`: the
session fetches again) or at the deadline (the session answers the empty
page). One wait at a time per connection; the request stays in flight
while it is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from covey.core import Rng, channel, crypto, noise
from covey.core.relayitems import inbox_id
from covey.errors import (
    BadSignature,
    InvalidInput,
    MalformedMessage,
    RelayMalformed,
    RelayNotAllowed,
    RelayRefused,
    RelaySlowDown,
)
from covey.relay import requests, store
from covey.relay.limits import RelayLimits

PREAMBLE: Final = b"cv1r"
PROLOGUE: Final = b"covey/v1/relay"
PATTERN: Final = "NN"
#: Inboxes one connection may be authorized for: one, so that the relay
#: cannot link a device's inboxes (its groups) by the connection they share
#: (a device reads each inbox on a connection of its own; review of the
#: relay design).
MAX_INBOXES_PER_CONNECTION: Final = 1
#: Requests waiting for the store on one connection; more are refused.
MAX_IN_FLIGHT: Final = 16


@dataclass(frozen=True)
class RelayIdentity:
    """A relay's Ed25519 key pair (the seed stays in its data directory)."""

    seed: bytes
    public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> RelayIdentity:
        return cls(seed, crypto.signing_public_key(seed))


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Run:
    """Run `action` on the store; give its result (or refusal) to `answer(number, ...)`.

    `watch`: this request is a wait on that inbox: before the action runs,
    start noting puts into it (or, if the process holds all the waits it
    can, answer `RelaySlowDown` instead of running it), and keep noting them
    until the session is no longer `waiting`.
    """

    number: int
    action: store.Action
    watch: bytes | None = None


@dataclass(frozen=True)
class Hold:
    """Answer request `number` later: call `wake(number, now, woken=True)` once a
    put into the watched inbox was noted since its last `Run`, or
    `wake(number, now, woken=False)` at `until` (the session's clock)."""

    number: int
    until: float


@dataclass(frozen=True)
class End:
    """Close the connection (after sending what came before)."""

    reason: str


Output = Send | Run | Hold | End


@dataclass(frozen=True)
class _Wait:
    """The wait a connection has in flight: its request and what it fetches."""

    number: int
    box: bytes
    after: int
    until: float


def inbox_auth_message(challenge: bytes, box: bytes) -> bytes:
    """What an inbox owner signs to read it on one connection."""
    return challenge + box


def writer_hash(token: bytes) -> bytes:
    """What an inbox owner registers for a write token (and the relay compares)."""
    return crypto.blake2b(token, crypto.HashDomain.RELAY_INBOX_WRITER)


def read_token(write_token: bytes) -> bytes:
    """A mirror segment's read token, from its write token (a writer can read)."""
    return crypto.blake2b(write_token, crypto.HashDomain.RELAY_SEGMENT_READ)


def segment_id(read: bytes) -> bytes:
    """A mirror segment's ID, from its read token: a segment is bound to its
    tokens, so nobody can take one by writing first (review of the relay design)."""
    return crypto.blake2b(read, crypto.HashDomain.RELAY_SEGMENT_ID)


class RelaySession:
    """The relay's side of one connection."""

    def __init__(
        self, identity: RelayIdentity, limits: RelayLimits, now: float, access: bytes
    ) -> None:
        """`access`: the relay's access secret (its link carries it); a connection
        that presented it may make inboxes and segments."""
        self._identity = identity
        self._access = access
        self.limits = limits
        #: The device presented the access secret: it may make inboxes and segments.
        self.may_create = False
        self._preamble = b""
        self._deframer = channel.Deframer()
        self._handshake: noise.Handshake | None = None
        self._transport: noise.Transport | None = None
        self._reassembler: channel.Reassembler | None = None
        self.challenge = b""
        #: Inboxes whose owner proved itself on this connection.
        self.authorized: set[bytes] = set()
        self._tokens = float(limits.request_burst)
        self._refilled = now
        self.in_flight: set[int] = set()
        #: The wait in flight on this connection (at most one), if any.
        self.wait: _Wait | None = None
        self.ended = False

    @property
    def waiting(self) -> bytes | None:
        """The inbox this connection waits on, while a wait is in flight."""
        return None if self.wait is None else self.wait.box

    # --- bytes in

    def receive(self, data: bytes, now: float, rng: Rng) -> list[Output]:
        """Take bytes from the device; what to do about them, in order."""
        if self.ended:
            return []
        out: list[Output] = []
        try:
            if len(self._preamble) < len(PREAMBLE):
                take = len(PREAMBLE) - len(self._preamble)
                self._preamble += data[:take]
                data = data[take:]
                if not PREAMBLE.startswith(self._preamble):
                    return self._end(out, "not a relay connection")
                if len(self._preamble) < len(PREAMBLE):
                    return out
            for message in self._deframer.feed(data):
                self._message(message, now, rng, out)
                if self.ended:
                    break
        except RelayMalformed:
            self._send(out, requests.write_refusal(0, RelayMalformed()))
            return self._end(out, "a request did not parse")
        except InvalidInput:
            return self._end(out, "the device's bytes did not check out")
        return out

    def _message(self, message: bytes, now: float, rng: Rng, out: list[Output]) -> None:
        if self._transport is None:
            self._handshake_message(message, rng, out)
            return
        assert self._reassembler is not None
        if len(message) > noise.MAX_MESSAGE:
            raise MalformedMessage("a Noise message is at most 65,535 bytes")
        whole = self._reassembler.push(message)
        if whole is not None:
            self._request(whole, now, rng, out)

    def _handshake_message(self, message: bytes, rng: Rng, out: list[Output]) -> None:
        if self._handshake is not None:
            raise MalformedMessage("the handshake is over")
        self._handshake = noise.Handshake(PATTERN, initiator=False, rng=rng, prologue=PROLOGUE)
        self._handshake.read_message(message)
        out.append(Send(channel.frame(self._handshake.write_message())))
        transport = self._handshake.transport
        assert transport is not None
        self._transport = transport
        self._reassembler = channel.Reassembler(transport, requests.MAX_REQUEST)
        self.challenge = rng(requests.CHALLENGE_BYTES)
        proof = crypto.sign(
            self._identity.seed, crypto.SignDomain.RELAY_PROOF, transport.handshake_hash
        )
        hello = requests.Hello(proof, self.limits, self.challenge)
        self._send(out, hello.to_wire())

    # --- requests

    def _request(self, data: bytes, now: float, rng: Rng, out: list[Output]) -> None:
        request = requests.read_request(data, self.limits)  # RelayMalformed ends it
        number = request.number
        try:
            self._take_token(now)
            if request.refused is not None:
                raise request.refused
            if number in self.in_flight or len(self.in_flight) >= MAX_IN_FLIGHT:
                raise RelaySlowDown()
            action = self._action(request, int(now), rng)
            watch = self._start_wait(request, now) if request.op == "inbox-wait" else None
        except RelayRefused as refusal:
            self._send(out, requests.write_refusal(number, refusal))
            return
        if action is None:
            self._send(out, requests.write_answer(number, True))
            return
        self.in_flight.add(number)
        out.append(Run(number, action, watch))

    def _start_wait(self, request: requests.Request, now: float) -> bytes | None:
        """The inbox to watch for this wait (None: 0 seconds, a plain fetch)."""
        f = request.fields
        if not f["seconds"]:
            return None
        if self.wait is not None:
            raise RelaySlowDown()  # (one wait at a time on a connection)
        self.wait = _Wait(request.number, f["box"], f["after"], now + f["seconds"])
        return f["box"]

    def _take_token(self, now: float) -> None:
        limits = self.limits
        elapsed = max(0.0, now - self._refilled)
        self._refilled = max(self._refilled, now)
        self._tokens = min(
            float(limits.request_burst), self._tokens + elapsed * limits.requests_per_second
        )
        if self._tokens < 1:
            raise RelaySlowDown()
        self._tokens -= 1

    def _action(self, request: requests.Request, now: int, rng: Rng) -> store.Action | None:
        f = request.fields
        op = request.op
        expires = now + f.get("ttl", 0)  # (puts: ttl is checked, in seconds)
        if op == "access":
            if not crypto.equal(f["secret"], self._access):
                raise RelayNotAllowed()
            self.may_create = True
            return None
        if op == "inbox-auth":
            self._authorize(f["box"], f["pub"], f["sig"])
            return None
        if op == "inbox-put":
            return store.InboxPut(f["box"], writer_hash(f["token"]), f["item"], expires)
        if op == "mirror-put":
            segment = segment_id(read_token(f["token"]))
            return store.MirrorPut(segment, f["item"], expires, self.may_create)
        if op == "mirror-get":
            return store.MirrorGet(segment_id(f["read"]), f["after"])
        if op == "blob-put":
            segment = segment_id(read_token(f["token"]))
            return store.BlobPut(
                segment, rng(requests.ID_BYTES), f["blob"], expires, self.may_create
            )
        if op == "blob-get":
            return store.BlobGet(f["id"])
        # The owner's requests: inbox-fetch, inbox-wait, inbox-ack, inbox-writers.
        if f["box"] not in self.authorized:
            raise RelayNotAllowed()
        if op in ("inbox-fetch", "inbox-wait"):
            return store.InboxFetch(f["box"], f["after"])
        if op == "inbox-ack":
            return store.InboxAck(f["box"], f["numbers"])
        assert op == "inbox-writers"
        return store.InboxWriters(f["box"], f["hashes"], self.may_create)

    def _authorize(self, box: bytes, public: bytes, signature: bytes) -> None:
        if inbox_id(public) != box or len(self.authorized) >= MAX_INBOXES_PER_CONNECTION:
            raise RelayNotAllowed()
        try:
            crypto.verify(
                public,
                crypto.SignDomain.RELAY_INBOX_AUTH,
                inbox_auth_message(self.challenge, box),
                signature,
            )
        except BadSignature:
            raise RelayNotAllowed() from None
        self.authorized.add(box)

    # --- results back

    def answer(self, number: int, result: store.Result | RelayRefused) -> list[Output]:
        """The store's result for request `number`: what to send."""
        self.in_flight.discard(number)
        out: list[Output] = []
        if self.ended:
            return out
        wait = self.wait
        if wait is not None and wait.number == number:
            if isinstance(result, store.Items) and not result.items:
                self.in_flight.add(number)  # (held: still in flight)
                out.append(Hold(number, wait.until))
                return out
            self.wait = None  # (answered below: items, or a refusal)
        if isinstance(result, RelayRefused):
            self._send(out, requests.write_refusal(number, result))
        elif isinstance(result, store.Stored):
            self._send(out, requests.write_answer(number, result.number))
        elif isinstance(result, store.Items):
            items = [[n, data, expires] for n, data, expires in result.items]
            self._send(out, requests.write_answer(number, {"items": items, "more": result.more}))
        elif isinstance(result, store.Blob):
            self._send(out, requests.write_answer(number, result.data))
        elif isinstance(result, store.BlobStored):
            self._send(out, requests.write_answer(number, result.blob_id))
        else:
            self._send(out, requests.write_answer(number, result.count))
        return out

    def wake(self, number: int, now: float, woken: bool) -> list[Output]:
        """A held wait's turn: a put was noted (`woken`: fetch again), or its time
        is up (answer the empty page)."""
        wait = self.wait
        if self.ended or wait is None or wait.number != number:
            return []  # (answered already)
        if woken:
            return [Run(number, store.InboxFetch(wait.box, wait.after), wait.box)]
        self.wait = None
        self.in_flight.discard(number)
        out: list[Output] = []
        self._send(out, requests.write_answer(number, {"items": [], "more": False}))
        return out

    # --- bytes out

    def _send(self, out: list[Output], message: bytes) -> None:
        if self._transport is None:
            return  # (nothing can be said before the handshake)
        for fragment in channel.fragments(self._transport, message, requests.MAX_ANSWER):
            out.append(Send(fragment))

    def _end(self, out: list[Output], reason: str) -> list[Output]:
        self.ended = True
        out.append(End(reason))
        return out
