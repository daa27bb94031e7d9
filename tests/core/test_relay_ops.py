"""A group's relays and its members' inboxes, in the signed log (PROTOCOL.md 6.1, 18.6).

`add_relay` and `remove_relay` are an admin's; `set_inbox` is any member's,
about itself. Concurrent changes to one relay merge to one answer on every
replica (a removal wins), and they obey the same revocation rules as every
admin op: an admin demoted or removed concurrently with its `add_relay`
does not get its relay in. Random scripts with these ops are in the
convergence, merge-rule and incremental tests (`tests.harness.ACTIONS`).
"""

from __future__ import annotations

import itertools

import pytest

from covey.core import membership, wire
from covey.core.membership import MAX_RELAYS
from covey.core.ops import AddRelay, SetInbox, parse_op
from covey.errors import MalformedMessage, NotAllowed
from tests.core.test_log import forge
from tests.harness import RELAYS, World, summary

KEY, ACCESS = RELAYS[0]
BOX = bytes(range(32))


@pytest.fixture
def world() -> World:
    """Device 0 founds; 1 is an admin and 2 a member; every replica has every op."""
    world = World(4, seed="relays")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    for j in (1, 2):
        world.sync(0, j)
    return world


def everyone_agrees(world: World) -> dict:
    world.converge()
    summaries = world.summaries()
    assert all(s == summaries[0] for s in summaries)
    return summaries[0]


def test_an_admin_adds_a_relay_and_every_member_sees_it(world: World) -> None:
    op = world.replicas[0].add_relay(KEY, "relay.example.org", 4443, ACCESS, world.tick())
    world.written.append(op)
    agreed = everyone_agrees(world)
    assert agreed["relays"] == {KEY.hex(): ("relay.example.org", 4443, ACCESS.hex())}
    relay = world.replicas[2].state.relays[KEY]
    assert (relay.key, relay.host, relay.port, relay.access) == (
        KEY,
        "relay.example.org",
        4443,
        ACCESS,
    )


def test_a_member_cannot_add_or_remove_a_relay(world: World) -> None:
    with pytest.raises(NotAllowed, match="not an admin"):
        world.replicas[2].add_relay(KEY, "relay.test", 1, ACCESS, world.tick())
    world.act(0, "relay_add", 0)
    world.sync(0, 2)
    with pytest.raises(NotAllowed, match="not an admin"):
        world.replicas[2].remove_relay(KEY, world.tick())
    # Signed by hand, past the member's own check: every replica refuses it.
    forged = forge(world, 2, AddRelay(RELAYS[1][0], "evil.test", 1, RELAYS[1][1]))
    assert world.replicas[0].receive(forged.raw).outcome == "rejected"
    assert RELAYS[1][0] not in world.replicas[0].state.relays


def test_a_relay_that_moves_gets_its_new_address(world: World) -> None:
    world.act(0, "relay_add", 0)
    world.replicas[0].add_relay(KEY, "relay-0.test", 9999, ACCESS, world.tick())
    assert world.replicas[0].state.relays[KEY].port == 9999
    with pytest.raises(NotAllowed, match="already one of the group's"):
        world.replicas[0].add_relay(KEY, "relay-0.test", 9999, ACCESS, world.tick())


def test_removed_relay_is_gone_and_can_come_back(world: World) -> None:
    world.act(0, "relay_add", 0)
    world.act(0, "relay_remove", 0)
    assert world.replicas[0].state.relays == {}
    with pytest.raises(NotAllowed, match="not one of the group's"):
        world.replicas[0].remove_relay(KEY, world.tick())
    world.act(1, "relay_add", 0)  # 1 has seen neither: its add is concurrent with the removal
    world.sync(0, 1)
    assert world.replicas[1].state.relays == {}  # so the removal wins
    world.act(1, "relay_add", 0)  # an add after the removal: the relay is back
    agreed = everyone_agrees(world)
    assert set(agreed["relays"]) == {KEY.hex()}


def test_a_removal_wins_over_a_concurrent_add_or_move(world: World) -> None:
    world.act(0, "relay_add", 0)
    for j in (1, 2):
        world.sync(0, j)
    world.act(0, "relay_remove", 0)  # apart: 0 removes the relay ...
    world.act(1, "relay_move", 0)  # ... while 1 moves it
    agreed = everyone_agrees(world)
    assert agreed["relays"] == {}


def test_concurrent_moves_agree_on_the_smallest_op_id(world: World) -> None:
    world.act(0, "relay_add", 0)
    world.sync(0, 1)
    one = world.replicas[0].add_relay(KEY, "relay-0.test", 7001, ACCESS, world.tick())
    two = world.replicas[1].add_relay(KEY, "relay-0.test", 7002, ACCESS, world.tick())
    world.written += [one, two]
    agreed = everyone_agrees(world)
    port = (one if one.id < two.id else two).body.port  # type: ignore[union-attr]
    assert agreed["relays"][KEY.hex()][1] == port
    # A later add that follows both settles it for good.
    world.act(0, "relay_add", 0)
    assert everyone_agrees(world)["relays"][KEY.hex()][1] == 4443


def test_a_relay_left_out_past_the_limit_can_still_be_removed_or_moved(world: World) -> None:
    """Review finding: one left out by a merge was hidden, could be neither removed
    nor moved, and came back by itself when another relay went."""
    keys = [bytes([k]) * 32 for k in range(1, 11)]
    for key in keys[:6]:
        world.written.append(world.replicas[0].add_relay(key, "r.test", 1, ACCESS, world.tick()))
    world.deliver(world.written, 1)
    for key in keys[6:8]:  # apart: 0 adds two more, and 1 adds two others
        world.written.append(world.replicas[0].add_relay(key, "r.test", 1, ACCESS, world.tick()))
    for key in keys[8:]:
        world.written.append(world.replicas[1].add_relay(key, "r.test", 1, ACCESS, world.tick()))
    everyone_agrees(world)
    state = world.replicas[0].state
    assert len(state.named_relays) == 10
    assert list(state.relays) == sorted(keys)[:MAX_RELAYS]
    hidden = sorted(keys)[-1]
    world.written.append(world.replicas[0].add_relay(hidden, "moved.test", 2, ACCESS, world.tick()))
    world.written.append(world.replicas[0].remove_relay(hidden, world.tick()))
    assert hidden not in everyone_agrees(world)["relays"]
    assert hidden not in world.replicas[2].state.named_relays


def test_a_log_names_at_most_64_relays_in_all(world: World) -> None:
    """Review finding: adding and removing thousands of relays made every later
    merge quadratic (a removed relay's ops stay, so its removal keeps winning)."""
    group = world.replicas[0]
    for k in range(membership.MAX_RELAY_KEYS):
        key = k.to_bytes(32, "big")
        group.add_relay(key, "r.test", 1, ACCESS, world.tick())
        group.remove_relay(key, world.tick())
    with pytest.raises(NotAllowed, match="at most 64 relays in all"):
        group.add_relay(b"\xff" * 32, "r.test", 1, ACCESS, world.tick())
    group.add_relay(
        (3).to_bytes(32, "big"), "r.test", 1, ACCESS, world.tick()
    )  # (one named before)
    assert len(group.state.relays) == 1


def test_at_most_eight_relays_even_when_concurrent_adds_pass_it(world: World) -> None:
    keys = [bytes([k]) * 32 for k in range(1, 11)]
    group = world.replicas[0]
    for key in keys[:MAX_RELAYS]:
        world.written.append(group.add_relay(key, "r.test", 1, ACCESS, world.tick()))
    with pytest.raises(NotAllowed, match="at most 8 relays"):
        group.add_relay(keys[MAX_RELAYS], "r.test", 1, ACCESS, world.tick())
    # Admin 1 (apart, seeing only six of them) adds two more: 10 relays in all.
    world.deliver(world.written[: 3 + 6], 1)
    for key in keys[MAX_RELAYS:]:
        world.written.append(world.replicas[1].add_relay(key, "r.test", 1, ACCESS, world.tick()))
    agreed = everyone_agrees(world)
    assert list(agreed["relays"]) == [k.hex() for k in sorted(keys)[:MAX_RELAYS]]


def test_an_admin_demoted_concurrently_does_not_get_its_relay_in(world: World) -> None:
    world.act(0, "demote", 1)  # 0 demotes 1, while 1 (apart) adds a relay
    sneaky = world.act(1, "relay_add", 1)
    assert sneaky is not None
    agreed = everyone_agrees(world)
    assert agreed["relays"] == {}
    assert agreed["skipped"][sneaky.id.hex()] == membership.VETOED_AUTHOR


def test_a_removed_admin_cannot_move_a_relay_through_a_puppet(world: World) -> None:
    """The review's puppet: 1, removed concurrently, adds device 3, which moves the relay."""
    world.act(0, "relay_add", 0)
    world.sync(0, 1)
    world.act(0, "remove", 1)
    world.act(1, "add_admin", 3)
    world.sync(1, 3)
    moved = world.act(3, "relay_move", 0)
    assert moved is not None
    agreed = everyone_agrees(world)
    assert agreed["relays"][KEY.hex()][1] == 4443
    assert moved.id.hex() in agreed["skipped"]


def test_members_announce_their_own_inboxes(world: World) -> None:
    with pytest.raises(NotAllowed, match="not one of the group's"):
        world.replicas[2].set_inbox(KEY, BOX, world.tick())
    world.act(0, "relay_add", 0)
    world.sync(0, 2)
    world.written.append(world.replicas[2].set_inbox(KEY, BOX, world.tick()))
    with pytest.raises(NotAllowed, match="already announced"):
        world.replicas[2].set_inbox(KEY, BOX, world.tick())
    later = bytes(32)
    world.written.append(world.replicas[2].set_inbox(KEY, later, world.tick()))
    everyone_agrees(world)
    for replica in world.replicas:
        assert replica.state.inbox_of(world.id(2), KEY) == later
        assert replica.state.inbox_of(world.id(1), KEY) is None


def test_a_member_cannot_announce_another_members_inbox(world: World) -> None:
    """Review finding: honest senders would have filled the victim's inbox with
    the announcer's backlog, under a token the victim registered itself."""
    world.act(0, "relay_add", 0)
    world.sync(0, 2)
    world.written.append(world.replicas[2].set_inbox(KEY, BOX, world.tick()))
    world.sync(2, 0)
    with pytest.raises(NotAllowed, match="another device announced that inbox"):
        world.replicas[0].set_inbox(KEY, BOX, world.tick())


def test_a_non_member_cannot_announce_an_inbox(world: World) -> None:
    world.act(0, "relay_add", 0)
    world.act(0, "remove", 2)
    forged = forge(world, 2, SetInbox(KEY, BOX))
    assert world.replicas[0].receive(forged.raw).outcome == "rejected"
    assert world.replicas[0].state.inbox_of(world.id(2), KEY) is None


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("host", "Relay.test", "lowercase"),
        ("host", "relay.test/x", "lowercase name or address"),
        ("host", "", "1 to 253 characters"),
        ("host", "r\u00e9lay.test", "lowercase name or address"),
        ("host", "relay.test:443", "lowercase name or address"),
        ("host", "a..b", "lowercase name or address"),
        ("host", "-", "lowercase name or address"),
        ("host", "x" * 64 + ".test", "lowercase name or address"),
        ("host", "2130706433", "lowercase name or address"),
        ("host", "0x7f000001", "lowercase name or address"),
        ("host", "010.0.0.1", "lowercase name or address"),
        ("host", "::ffff:1.2.3.4", "lowercase name or address"),
        ("host", "fe80::1%eth0", "lowercase name or address"),
        ("port", 0, "port"),
        ("port", 65536, "port"),
        ("key", bytes(31), "32 bytes"),
        ("access", bytes(33), "32 bytes"),
    ],
)
def test_a_relay_op_with_a_bad_field_does_not_parse(
    world: World, field: str, value: object, why: str
) -> None:
    good = {"access": ACCESS, "host": "relay.test", "key": KEY, "port": 443}
    me = world.identities[0]
    body = {**good, field: value}
    raw = wire.seal_envelope(
        _RawContent(world.replicas[0].id, sorted(world.replicas[0].log.heads), body),
        me.device_id.raw,
        me.secrets.signing_seed,
    )
    with pytest.raises(MalformedMessage, match=why):
        parse_op(raw)


class _RawContent:
    """An op's content with an add_relay body given as a plain map (any values)."""

    TYPE = "op"

    def __init__(self, group: bytes, parents: list[bytes], body: dict) -> None:
        self.value = {"g": group, "k": "add_relay", "p": parents, "s": 9, "t": 1, "b": body}

    def to_wire(self) -> dict:
        return self.value


def test_relay_ops_round_trip_through_their_bytes(world: World) -> None:
    for op in itertools.chain(
        [world.replicas[0].add_relay(KEY, "fd00::1", 443, ACCESS, world.tick())],
        [world.replicas[0].set_inbox(KEY, BOX, world.tick())],
        [world.replicas[0].remove_relay(KEY, world.tick())],
    ):
        again = parse_op(op.raw)
        assert again.body == op.body
        assert again.id == op.id
    assert summary(world.replicas[0].state)["relays"] == {}
