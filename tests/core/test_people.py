"""People in a group's log: `set_person` (PROTOCOL.md 6.4).

Which devices are one person's is the admins' word: recovery and its veto
will act per person, so a device placing itself, or a removed admin
placing a device concurrently with its removal, must get nowhere. A device
no `set_person` placed is a person of its own, named after it. Random
scripts with `person` actions are in the convergence, merge-rule and
incremental tests (`tests.harness.ACTIONS`).
"""

from __future__ import annotations

import pytest

from covey.core import membership, wire
from covey.core.ops import SetPerson, implicit_person, parse_op
from covey.errors import MalformedMessage, NotAllowed
from tests.core.test_log import forge
from tests.harness import World

ALICE = b"a" * 16
BOB = b"b" * 16


@pytest.fixture
def world() -> World:
    """Device 0 founds; 1 is an admin, 2 and 3 members; every replica has every op."""
    world = World(5, seed="people")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.act(0, "add", 3)
    for j in (1, 2, 3):
        world.sync(0, j)
    return world


def everyone_agrees(world: World) -> membership.GroupState:
    world.converge()
    summaries = world.summaries()
    assert all(s == summaries[0] for s in summaries)
    return world.replicas[0].state


def place(world: World, who: int, device: int, person: bytes, name: str) -> None:
    world.written.append(
        world.replicas[who].set_person(world.id(device), person, name, world.tick())
    )


def test_a_device_no_one_placed_is_a_person_of_its_own(world: World) -> None:
    state = world.replicas[0].state
    two = world.id(2)
    assert state.person(two) == implicit_person(two)
    assert state.person_name(state.person(two)) == "device-2"
    assert len(state.people) == 4
    assert state.person_name(b"z" * 16) is None


def test_an_admin_places_devices_in_a_person_and_renames_it(world: World) -> None:
    place(world, 0, 2, ALICE, "Alice")
    place(world, 1, 3, ALICE, "Alice")
    state = everyone_agrees(world)
    assert state.people[ALICE] == [world.id(2), world.id(3)]
    assert state.person_name(ALICE) == "Alice"
    place(world, 0, 3, ALICE, "Alice B.")  # renaming is a set_person with the new name
    state = everyone_agrees(world)
    assert state.person_name(ALICE) == "Alice B."
    assert state.people[ALICE] == [world.id(2), world.id(3)]
    with pytest.raises(NotAllowed, match="already that person's"):
        world.replicas[0].set_person(world.id(3), ALICE, "Alice B.", world.tick())


def test_a_member_cannot_place_itself_or_others(world: World) -> None:
    place(world, 0, 3, ALICE, "Alice")
    world.sync(0, 2)
    with pytest.raises(NotAllowed, match="not an admin"):
        world.replicas[2].set_person(world.id(2), ALICE, "Alice", world.tick())
    # Signed by hand past its own node's check: every replica refuses it.
    forged = forge(world, 2, SetPerson(world.id(2), ALICE, "Alice"))
    assert world.replicas[0].receive(forged.raw).outcome == "rejected"
    assert world.replicas[0].state.person(world.id(2)) != ALICE


def test_only_a_member_can_be_placed(world: World) -> None:
    with pytest.raises(NotAllowed, match="not a member"):
        world.replicas[0].set_person(world.id(4), ALICE, "Alice", world.tick())


def test_a_removed_device_loses_its_person_and_comes_back_as_its_own(world: World) -> None:
    place(world, 0, 2, ALICE, "Alice")
    world.act(0, "remove", 2)
    state = world.replicas[0].state
    assert ALICE not in state.people
    world.act(0, "add", 2)
    state = everyone_agrees(world)
    assert state.person(world.id(2)) == implicit_person(world.id(2))


def test_a_removed_admin_cannot_place_a_device_concurrently_with_its_removal(
    world: World,
) -> None:
    """Rule 3: a set_person needs admin, so a concurrent removal of its author vetoes it
    (a removed admin must not put a puppet among a person's devices, where it
    would veto that person's recovery)."""
    place(world, 0, 2, ALICE, "Alice")
    world.sync(0, 1)
    world.act(0, "remove", 1)  # apart: 0 removes admin 1 ...
    op = world.replicas[1].set_person(world.id(3), ALICE, "Alice", world.tick())  # ... which acts
    world.written.append(op)
    state = everyone_agrees(world)
    assert state.skipped[op.id] == membership.VETOED_AUTHOR
    assert state.people[ALICE] == [world.id(2)]


def test_a_placement_concurrent_with_the_devices_removal_leaves_no_trace(world: World) -> None:
    world.sync(0, 1)
    world.act(0, "remove", 3)
    place(world, 1, 3, ALICE, "Alice")  # concurrent with 3's removal
    state = everyone_agrees(world)
    assert world.id(3) not in state.members
    assert ALICE not in state.people
    assert world.id(3) not in state.person_of


def test_concurrent_placements_of_one_device_agree_everywhere(world: World) -> None:
    world.sync(0, 1)
    place(world, 0, 2, ALICE, "Alice")
    place(world, 1, 2, BOB, "Bob")
    state = everyone_agrees(world)
    assert state.person(world.id(2)) in (ALICE, BOB)
    # The later op in the replay order wins (the order is the set's, not arrival's).
    later = max(
        (op for op in world.written if isinstance(op.body, SetPerson)),
        key=lambda op: state.applied.index(op.id),
    )
    assert state.person(world.id(2)) == later.body.person  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"device": b"\1" * 32, "name": "Alice", "person": b"\1" * 15}, "16 bytes"),
        ({"device": b"\1" * 32, "name": "", "person": b"\1" * 16}, "characters"),
        ({"device": b"\1" * 32, "name": "A\u202eB", "person": b"\1" * 16}, "invisible"),
        ({"device": b"\1" * 31, "name": "Alice", "person": b"\1" * 16}, "32 bytes"),
        ({"device": b"\1" * 32, "person": b"\1" * 16}, "wrong fields"),
    ],
)
def test_malformed_set_person_is_refused(world: World, body: dict, error: str) -> None:
    good = forge(world, 0, SetPerson(world.id(2), ALICE, "Alice"))
    _, author, content, _, _ = wire.read_envelope(good.raw)
    content["b"] = body
    seed = world.identities[0].secrets.signing_seed

    class Raw:
        TYPE = "op"

        def to_wire(self) -> dict:
            return content

    with pytest.raises(MalformedMessage, match=error):
        parse_op(wire.seal_envelope(Raw(), author, seed))  # type: ignore[arg-type]


def test_no_device_is_placed_in_another_devices_own_person(world: World) -> None:
    """Review of people, 6: a device re-added came back into whoever had been
    placed under its implicit ID. A person ID that is another device's own is
    refused; its own is allowed (back to being a person of its own)."""
    with pytest.raises(NotAllowed, match="another device's own"):
        world.replicas[0].set_person(world.id(3), implicit_person(world.id(2)), "X", world.tick())
    place(world, 0, 2, ALICE, "Alice")
    place(world, 0, 2, implicit_person(world.id(2)), "device-2")
    state = everyone_agrees(world)
    assert state.person(world.id(2)) == implicit_person(world.id(2))
    world.act(0, "remove", 2)
    world.act(0, "add", 2)
    assert world.replicas[0].state.people[implicit_person(world.id(2))] == [world.id(2)]
