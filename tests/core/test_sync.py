"""Anti-entropy sync, stepped by hand between in-memory devices."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import encoding
from covey.core.sync import DONE, LIMITS, SyncSession, missing_for
from covey.errors import InvalidInput
from tests.harness import WEIGHTED_ACTIONS, World, summary


def exchange(world: World, a: int, b: int, max_rounds: int = 20) -> int:
    """Sync devices a and b until nothing is left to send; return the flights used.

    A flight is every message in transit at once, both ways.
    """
    sides = {
        a: SyncSession({world.replicas[a].id: world.replicas[a]}, world.id(b)),
        b: SyncSession({world.replicas[b].id: world.replicas[b]}, world.id(a)),
    }
    inbox = {a: [sides[b].hello()], b: [sides[a].hello()]}
    rounds = 0
    while any(inbox.values()):
        rounds += 1
        assert rounds <= max_rounds, "sync does not settle"
        outgoing: dict[int, list[bytes]] = {a: [], b: []}
        for me, other in ((a, b), (b, a)):
            for message in inbox[me]:
                outgoing[other] += sides[me].receive(message).send
        inbox = outgoing
    return rounds


@pytest.fixture
def world() -> World:
    world = World(3, seed="sync")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.sync(0, 1)
    world.sync(0, 2)
    return world


def test_changes_made_apart_converge_in_one_exchange(world: World) -> None:
    for _ in range(5):
        world.act(0, "rotate")
    world.act(1, "remove", 2)
    world.act(1, "rotate")
    rounds = exchange(world, 0, 1)
    # One exchange: hellos cross, then each side's missing ops (and its
    # "done") cross; nothing more is sent (no "need" round).
    assert rounds == 2
    assert summary(world.replicas[0].state) == summary(world.replicas[1].state)
    assert len(world.replicas[0].log) == len(world.replicas[1].log)


def test_missing_parents_are_fetched(world: World) -> None:
    first = world.act(0, "rotate")
    world.act(0, "rotate")
    # Device 1 somehow got the second op but not the first: it waits.
    world.deliver([world.written[-1]], 1)
    assert world.replicas[1].log.missing_parents() == {first.id}
    exchange(world, 0, 1)
    assert not world.replicas[1].log.pending
    assert summary(world.replicas[0].state) == summary(world.replicas[1].state)


def test_groups_the_peer_is_not_in_are_never_named(world: World) -> None:
    other = World(2, seed="private")  # device 0 of another world: a stranger
    session = SyncSession({world.replicas[0].id: world.replicas[0]}, other.id(1))
    hello = encoding.decode(session.hello(), encoding.DEFAULT_LIMITS)
    assert hello == {"t": "hello", "g": []}
    # Even asked directly, it says nothing about the group.
    ask = encoding.encode({"t": "need", "g": world.replicas[0].id, "i": [world.written[0].id]})
    assert session.receive(ask).send == [DONE]


def test_a_removed_device_learns_of_its_removal_and_nothing_more(world: World) -> None:
    """It is sent the causal past of the op that removed it (so it learns, and
    stops), never what came after: the later epoch's key stays out of reach."""
    world.act(0, "rotate")  # before the removal: device 2 lacks it, and is owed it
    removal = world.act(0, "remove", 2)
    later = world.act(0, "rotate")
    assert removal is not None
    assert later is not None
    session = SyncSession({world.replicas[0].id: world.replicas[0]}, world.id(2))
    hello = SyncSession({world.replicas[2].id: world.replicas[2]}, world.id(0)).hello()
    reply = session.receive(hello).send
    assert reply[-1] == DONE
    sent = [raw for message in reply[:-1] for raw in encoding.decode(message, LIMITS)["o"]]
    assert removal.raw in sent
    assert later.raw not in sent
    removed = world.replicas[2]
    world.deliver(sent, 2)
    assert world.id(2) not in removed.state.members
    assert later.id not in removed.log
    assert later.id not in removed.keys
    # Once it holds them, nothing more goes to it.
    again = SyncSession({removed.id: removed}, world.id(0)).hello()
    assert SyncSession({world.replicas[0].id: world.replicas[0]}, world.id(2)).receive(
        again
    ).send == [DONE]


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x80",
        encoding.encode({"t": "gossip"}),
        encoding.encode({"t": "hello", "g": 5}),
        encoding.encode({"t": "hello", "g": [[b"x" * 32, {"zz": 1}]]}),
        encoding.encode({"t": "ops", "g": b"short", "o": []}),
        encoding.encode({"t": "ops", "g": b"x" * 32, "o": [1, 2]}),
        encoding.encode({"t": "need", "g": b"x" * 32, "i": "no"}),
    ],
)
def test_malformed_messages_are_typed_errors(world: World, message: bytes) -> None:
    session = SyncSession({world.replicas[0].id: world.replicas[0]}, world.id(1))
    with pytest.raises(InvalidInput):
        session.receive(message)


def test_forged_ops_are_refused_not_fatal(world: World) -> None:
    op = world.act(0, "rotate")
    tampered = bytearray(op.raw)
    tampered[-5] ^= 1
    session = SyncSession({world.replicas[1].id: world.replicas[1]}, world.id(0))
    outcome = session.receive(
        encoding.encode({"t": "ops", "g": world.replicas[1].id, "o": [bytes(tampered), op.raw]})
    )
    assert len(outcome.refused) == 1
    assert outcome.changed == {world.replicas[1].id}
    assert op.id in world.replicas[1].log


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(WEIGHTED_ACTIONS), st.integers(0, 3)),
        max_size=20,
    ),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12),
)
@settings(max_examples=60)
def test_pairwise_syncs_spread_everything(actions, pairs) -> None:
    world = World(4, seed="gossip")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.act(0, "add", 3)
    for device in (1, 2, 3):
        world.sync(0, device)
    for i, action, j in actions:
        world.act_somehow(i, action, j)
    for a, b in pairs:
        if a != b:
            exchange(world, a, b)
    # Then a full round of syncs among current members: everyone agrees.
    for _ in range(2):
        for a in range(4):
            for b in range(4):
                if a != b:
                    exchange(world, a, b)
    # The truth: every op anyone wrote, in one replica.
    truth = World(4, seed="gossip")
    truth.deliver([op.raw for op in world.written], 3)
    expected = summary(truth.replicas[3].state)
    members = [i for i in range(4) if world.id(i) in truth.replicas[3].state.members]
    # (Concurrent leaves can empty a group: then there is nobody to agree.)
    for i in members:  # removed devices are sent nothing more, by design
        assert summary(world.replicas[i].state) == expected


def test_missing_for_sends_only_what_is_lacking(world: World) -> None:
    group = world.replicas[0]
    vector = group.log.version_vector()
    assert missing_for(group, vector) == []
    op = world.act(0, "rotate")
    assert missing_for(group, vector) == [op]


def test_abuse_within_a_session_is_refused(world: World) -> None:
    group = world.replicas[0]
    session = SyncSession({group.id: group}, world.id(1))
    peer_hello = SyncSession({world.replicas[1].id: world.replicas[1]}, world.id(0)).hello()
    # A hello naming the same group twice would make us send the log twice.
    twice = encoding.encode({"t": "hello", "g": [[group.id, {}], [group.id, {}]]})
    with pytest.raises(InvalidInput):
        SyncSession({group.id: group}, world.id(1)).receive(twice)
    session.receive(peer_hello)
    with pytest.raises(InvalidInput):  # one hello per session
        session.receive(peer_hello)
    need = encoding.encode({"t": "need", "g": group.id, "i": [world.written[0].id]})
    for _ in range(64):
        session.receive(need)
    with pytest.raises(InvalidInput):  # and a bounded number of requests
        session.receive(need)


@pytest.mark.parametrize("kind", [[1], {"x": 1}, 5, None])
def test_a_message_kind_of_the_wrong_type_is_malformed(world: World, kind) -> None:
    session = SyncSession({world.replicas[0].id: world.replicas[0]}, world.id(1))
    with pytest.raises(InvalidInput):
        session.receive(encoding.encode({"t": kind}))
