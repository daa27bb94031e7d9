"""`inbox-wait` in the pure session: held while the inbox has nothing new, answered as a fetch.

Driven through the real Noise channel (`tests.relay.pipe`); the relay
process's part (sleeping, noting puts) is played by the test: `Pipe.wake`
is what the process calls when a put was noted or the wait's time is up.
"""

from __future__ import annotations

import pytest

from covey.errors import (
    RelayBadWait,
    RelayMalformed,
    RelayNotAllowed,
    RelayNothingThere,
    RelaySlowDown,
)
from covey.relay import client
from covey.relay.limits import DEFAULT_LIMITS
from tests.relay.pipe import Pipe
from tests.relay.test_session import ITEM, TOKEN, owner_inbox

EMPTY = {"items": [], "more": False}


def answers(pipe: Pipe) -> list[client.Event]:
    return [e for e in pipe.events if isinstance(e, (client.Answer, client.Refused))]


def test_the_hello_advertises_how_long_a_wait_may_be() -> None:
    assert Pipe().ready.limits.wait_seconds == DEFAULT_LIMITS.wait_seconds == 300


def test_a_wait_with_items_waiting_is_answered_at_once_as_a_fetch() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    Pipe(relay.store, seed="sender").call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    got = relay.call("inbox-wait", box=box, after=0, seconds=60)
    assert [(n, data) for n, data, _ in got["items"]] == [(1, ITEM)]
    assert got == relay.call("inbox-fetch", box=box, after=0)
    assert relay.held == []


def test_an_empty_wait_is_held_and_a_put_then_a_wake_answers_it_with_the_item() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    number = relay.ask("inbox-wait", box=box, after=0, seconds=60)
    assert answers(relay) == []  # (held: nothing said yet)
    assert [h.number for h in relay.held] == [number]
    assert relay.held[0].until == relay.now + 60
    assert relay.watched == [box]  # (watched from before its fetch ran)
    assert relay.session.waiting == box
    Pipe(relay.store, seed="sender").call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    relay.wake(number, woken=True)
    [answer] = answers(relay)
    assert isinstance(answer, client.Answer)
    assert answer.number == number
    assert [(n, data) for n, data in client.read_items(answer.value)[0]] == [(1, ITEM)]
    assert relay.session.waiting is None
    assert relay.session.in_flight == set()


def test_a_wait_whose_time_is_up_is_answered_with_an_empty_page() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    number = relay.ask("inbox-wait", box=box, after=0, seconds=5)
    relay.wake(number, woken=False)
    [answer] = answers(relay)
    assert isinstance(answer, client.Answer)
    assert (answer.number, answer.value) == (number, EMPTY)
    assert relay.session.waiting is None
    relay.wake(number, woken=True)  # (late: answered already, nothing more is said)
    assert answers(relay) == []


def test_a_wake_with_nothing_new_holds_the_wait_again() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    Pipe(relay.store, seed="sender").call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    number = relay.ask("inbox-wait", box=box, after=1, seconds=60)  # (item 1 is old news)
    relay.wake(number, woken=True)
    assert answers(relay) == []
    assert [h.number for h in relay.held] == [number]
    assert relay.watched == [box, box]  # (watched again before the second fetch)


def test_zero_seconds_is_a_fetch_that_does_not_wait() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    assert relay.call("inbox-wait", box=box, after=0, seconds=0) == EMPTY
    assert relay.held == []
    assert relay.watched == []


def test_a_wait_longer_than_the_relay_allows_is_refused_and_the_connection_goes_on() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    too_long = relay.call("inbox-wait", box=box, after=0, seconds=DEFAULT_LIMITS.wait_seconds + 1)
    assert isinstance(too_long, RelayBadWait)
    assert relay.ended == []
    assert relay.call("inbox-fetch", box=box, after=0) == EMPTY


def test_the_client_holds_its_wait_to_what_the_relay_advertised() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    fields = client.inbox_wait(relay.ready.limits, box, 0, 10_000)
    assert fields["seconds"] == DEFAULT_LIMITS.wait_seconds
    relay.ask("inbox-wait", **fields)
    assert answers(relay) == []
    assert len(relay.held) == 1


def test_one_wait_at_a_time_on_a_connection() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    first = relay.ask("inbox-wait", box=box, after=0, seconds=60)
    second = relay.call("inbox-wait", box=box, after=0, seconds=60)
    assert isinstance(second, RelaySlowDown)
    relay.wake(first, woken=False)  # (the first is still there, and answered)
    [answer] = answers(relay)
    assert isinstance(answer, client.Answer)
    assert answer.number == first
    assert relay.call("inbox-wait", box=box, after=0, seconds=0) == EMPTY


def test_other_requests_are_answered_while_a_wait_is_held() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    number = relay.ask("inbox-wait", box=box, after=0, seconds=60)
    assert relay.call("inbox-ack", box=box, numbers=[]) == 0
    assert relay.session.waiting == box
    relay.wake(number, woken=False)
    [answer] = answers(relay)
    assert isinstance(answer, client.Answer)
    assert answer.number == number


def test_waiting_on_an_inbox_needs_its_owner_on_this_connection() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    stranger = Pipe(relay.store, seed="stranger")
    refused = stranger.call("inbox-wait", box=box, after=0, seconds=60)
    assert isinstance(refused, RelayNotAllowed)
    assert stranger.held == []
    assert stranger.watched == []


@pytest.mark.parametrize("seconds", [-1, True, "60", None, b"\x3c", [60]])
def test_a_wait_whose_seconds_do_not_parse_ends_the_connection(seconds: object) -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    refused = relay.call("inbox-wait", box=box, after=0, seconds=seconds)
    assert isinstance(refused, RelayMalformed)
    assert relay.ended == ["a request did not parse"]
    assert relay.held == []
    assert relay.watched == []


def test_a_wait_on_an_inbox_that_is_gone_is_refused_not_held() -> None:
    relay = Pipe(now=1_000_000)
    box = owner_inbox(relay)
    relay.store.inboxes.clear()  # type: ignore[attr-defined]  # (gone: idle, say)
    refused = relay.call("inbox-wait", box=box, after=0, seconds=60)
    assert isinstance(refused, RelayNothingThere)
    assert relay.held == []
    assert relay.session.waiting is None


def test_a_session_that_ended_answers_no_wake() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    number = relay.ask("inbox-wait", box=box, after=0, seconds=60)
    relay.send_raw(b"\x00\x01\xff")  # (a frame that does not decrypt: the end)
    assert relay.ended
    assert relay.session.wake(number, relay.now, woken=True) == []
