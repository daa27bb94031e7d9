"""One relay connection, device side: a pure state machine (PROTOCOL.md section 18).

`start()` gives the first bytes to send (the preamble and the first Noise
message); `receive(bytes)` takes what the relay sent and returns what it
meant: `Ready` once the relay proved it holds the key the device pinned
(its link), then an `Answer` or a `Refused` per request; `request(...)`
gives a request's number and bytes. A relay that cannot prove its key ends
the connection before the device says anything (`HandshakeFailed`).

The device never tells the relay who it is: it proves only that it owns an
inbox (`inbox_auth`) or knows a token, request by request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from covey.core import Rng, channel, crypto, noise, relayitems
from covey.errors import BadSignature, HandshakeFailed, MalformedMessage, RelayRefused
from covey.relay import requests, session
from covey.relay.limits import RelayLimits


@dataclass(frozen=True)
class Ready:
    """The relay proved its key; its limits and this connection's challenge."""

    limits: RelayLimits
    challenge: bytes


@dataclass(frozen=True)
class Answer:
    number: int
    value: Any


@dataclass(frozen=True)
class Refused:
    number: int
    refusal: RelayRefused


Event = Ready | Answer | Refused


class RelayClient:
    """The device's side of one relay connection."""

    def __init__(self, relay_key: bytes, rng: Rng) -> None:
        self.relay_key = relay_key
        self._handshake = noise.Handshake(
            session.PATTERN, initiator=True, rng=rng, prologue=session.PROLOGUE
        )
        self._deframer = channel.Deframer()
        self._transport: noise.Transport | None = None
        self._reassembler: channel.Reassembler | None = None
        self.ready: Ready | None = None
        self._next = 1

    def start(self) -> bytes:
        return session.PREAMBLE + channel.frame(self._handshake.write_message())

    def receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for message in self._deframer.feed(data):
            if self._transport is None:
                self._handshake.read_message(message)
                self._transport = self._handshake.transport
                assert self._transport is not None
                self._reassembler = channel.Reassembler(self._transport, requests.MAX_ANSWER)
                continue
            assert self._reassembler is not None
            whole = self._reassembler.push(message)
            if whole is None:
                continue
            if self.ready is None:
                events.append(self._hello(whole))
                continue
            number, value = requests.read_answer(whole)
            if isinstance(value, RelayRefused):
                events.append(Refused(number, value))
            else:
                events.append(Answer(number, value))
        return events

    def _hello(self, data: bytes) -> Ready:
        assert self._transport is not None
        try:
            hello = requests.Hello.from_wire(data)
            crypto.verify(
                self.relay_key,
                crypto.SignDomain.RELAY_PROOF,
                self._transport.handshake_hash,
                hello.proof,
            )
        except (BadSignature, MalformedMessage) as exc:
            raise HandshakeFailed(
                "the relay did not prove it holds the key its link names"
            ) from exc
        self.ready = Ready(hello.limits, hello.challenge)
        return self.ready

    def request(self, op: str, **values: Any) -> tuple[int, bytes]:
        """A request's number, and the bytes to send for it."""
        if self._transport is None or self.ready is None:
            raise RuntimeError("the relay has not proved its key yet")
        number = self._next
        self._next += 1
        message = requests.write_request(number, op, **values)
        return number, b"".join(channel.fragments(self._transport, message, requests.MAX_REQUEST))


def read_items(value: Any) -> tuple[list[tuple[int, bytes]], bool]:
    """A fetch's or mirror read's answer, from a relay that may lie: ([(number, item)], more).

    MalformedMessage unless it is `{items: [[number, item, expires], ...], more}`
    with numbers rising and items of the padded sizes.
    """
    if type(value) is not dict or set(value) != {"items", "more"}:
        raise MalformedMessage("a relay's page is {items, more}")
    items, more = value["items"], value["more"]
    if type(items) is not list or type(more) is not bool:
        raise MalformedMessage("a relay's page is {items, more}")
    read: list[tuple[int, bytes]] = []
    for entry in items:
        if (
            type(entry) is not list
            or len(entry) != 3
            or type(entry[0]) is not int
            or type(entry[1]) is not bytes
            or type(entry[2]) is not int
            or len(entry[1]) not in relayitems.ITEM_SIZES
            or (read and entry[0] <= read[-1][0])
            or not 0 < entry[0] <= requests.MAX_NUMBER
        ):
            raise MalformedMessage("a relay's page holds [number, item, expires], numbers rising")
        read.append((entry[0], entry[1]))
    return read, more


def inbox_wait(limits: RelayLimits, box: bytes, after: int, seconds: int) -> dict[str, Any]:
    """The fields of an `inbox-wait` for up to `seconds`, held to what the relay
    advertised (a longer wait would be refused, `RelayBadWait`). The answer is
    a page as `inbox-fetch` gives (`read_items`), empty if nothing came."""
    return {"box": box, "after": after, "seconds": max(0, min(seconds, limits.wait_seconds))}


def inbox_auth(seed: bytes, challenge: bytes) -> dict[str, bytes]:
    """The fields of an `inbox-auth` request for the inbox of `seed`, on one connection."""
    public = crypto.signing_public_key(seed)
    box = relayitems.inbox_id(public)
    signature = crypto.sign(
        seed, crypto.SignDomain.RELAY_INBOX_AUTH, session.inbox_auth_message(challenge, box)
    )
    return {"box": box, "pub": public, "sig": signature}
