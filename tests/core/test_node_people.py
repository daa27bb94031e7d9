"""People through the pure nodes (PROTOCOL.md 6.4): who places a device, and how.

An invitation may name the person the new device joins; otherwise the
device's own proposal (`covey init --person`, `NodeConfig.person`) is
followed, inside the pairing the code authenticated, and the inviter's
report says which person it joined. A founder places itself. An admin
moves a device (`PlacePerson`) or renames a person (`RenamePerson`).
"""

from __future__ import annotations

import pytest

from covey.core.identity import create_identity
from covey.core.node import Node, NodeConfig, io
from covey.core.ops import SetPerson
from tests.conftest import NOW, SeededRng
from tests.core.test_node import ME, Wire, advert_of


def pair(invite: io.Invite, proposal: str | None, *, founder: str | None = None) -> Wire:
    """The laptop (as `founder`) founds `family`, invites as `invite` says; the phone joins."""
    phone = create_identity("phone", NOW, SeededRng("people-phone"))
    wire = Wire(
        Node(ME, config=NodeConfig(person=founder)), Node(phone, config=NodeConfig(person=proposal))
    )
    wire.feed(wire.a, io.Command(1, io.CreateGroup("family")))
    effects = wire.a.handle(io.Command(2, invite), NOW, SeededRng("i"))
    reply = next(e for e in effects if isinstance(e, io.Reply))
    assert reply.error is None, reply
    wire.feed(wire.b, io.Command(1, io.Join(code=reply.data["code"])))
    wire.feed(wire.b, advert_of(effects))
    return wire


def replies(wire: Wire, name: str) -> list[io.Reply]:
    return [e for who, e in wire.log if who == name and isinstance(e, io.Reply)]


def state_of(node: Node):
    return next(iter(node.groups.values())).state


def test_a_founder_places_itself_under_its_own_person() -> None:
    wire = pair(io.Invite("family"), None, founder="Dad")
    state = state_of(wire.a)
    assert state.person_name(state.person(ME.device_id.raw)) == "Dad"


def test_a_proposal_of_a_new_person_is_followed_and_reported() -> None:
    wire = pair(io.Invite("family"), "Kid", founder="Dad")
    state = state_of(wire.a)
    phone = wire.b.me.device_id.raw
    assert state.person_name(state.person(phone)) == "Kid"
    assert state.person(phone) != state.person(ME.device_id.raw)
    assert replies(wire, "laptop")[-1].data["person"] == "Kid"
    assert replies(wire, "laptop")[-1].data["proposed_person"] is None
    # The phone holds the same: the set_person came in its welcome.
    assert state_of(wire.b).person(phone) == state.person(phone)


@pytest.mark.parametrize("proposal", ["Dad", "dad", "DAD ", "laptop", "Dаd"])
def test_a_proposal_never_joins_an_existing_person(proposal: str) -> None:
    """Review of people, 3 and 5: a joiner proposing "Dad" (or "dad", or the name of
    a device, or "Dаd" with a Cyrillic а) would get Dad's veto over his recovery
    and hold two shares; the proposal only ever makes a new person, and the
    inviter is told it was not followed."""
    wire = pair(io.Invite("family"), proposal, founder="Dad")
    state = state_of(wire.a)
    phone = wire.b.me.device_id.raw
    assert state.person(phone) != state.person(ME.device_id.raw)
    assert state.person_name(state.person(phone)) == "phone"
    assert replies(wire, "laptop")[-1].data["proposed_person"] == proposal.strip()


def test_the_invitations_person_wins_over_the_proposal() -> None:
    wire = pair(io.Invite("family", person="Mum"), "Dad", founder="Dad")
    state = state_of(wire.a)
    phone = wire.b.me.device_id.raw
    assert state.person_name(state.person(phone)) == "Mum"
    assert state.person(phone) != state.person(ME.device_id.raw)
    assert replies(wire, "laptop")[-1].data["person"] == "Mum"


def test_without_a_person_the_device_is_its_own_and_no_op_is_written() -> None:
    wire = pair(io.Invite("family"), None)
    group = next(iter(wire.a.groups.values()))
    assert not any(isinstance(op.body, SetPerson) for op in group.log.order)
    phone = wire.b.me.device_id.raw
    assert group.state.person_name(group.state.person(phone)) == "phone"
    assert replies(wire, "laptop")[-1].data["person"] == "phone"


def test_an_invalid_proposal_is_ignored_not_fatal() -> None:
    """A joining device's proposal is outside input: one the inviter cannot use is
    dropped (the pairing still succeeds), never placed as it came."""
    wire = pair(io.Invite("family"), "   ")
    phone = wire.b.me.device_id.raw
    state = state_of(wire.a)
    assert phone in state.members
    assert state.person_name(state.person(phone)) == "phone"


def test_an_invitation_may_name_an_existing_person() -> None:
    wire = pair(io.Invite("family", person="Dad"), None, founder="Dad")
    state = state_of(wire.a)
    assert state.person(wire.b.me.device_id.raw) == state.person(ME.device_id.raw)


def test_an_admin_moves_a_device_and_renames_a_person() -> None:
    wire = pair(io.Invite("family"), None, founder="Dad")
    phone = wire.b.me.device_id.raw
    wire.feed(wire.a, io.Command(5, io.PlacePerson("family", phone, "Dad")))
    assert replies(wire, "laptop")[-1].error is None
    state = state_of(wire.a)
    assert state.person(phone) == state.person(ME.device_id.raw)
    wire.feed(wire.a, io.Command(6, io.RenamePerson("family", "Dad", "Papa")))
    last = replies(wire, "laptop")[-1]
    assert last.error is None
    assert last.data["renamed"] == {"person": "Dad", "name": "Papa"}
    assert state_of(wire.a).person_name(state.person(phone)) == "Papa"


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (io.RenamePerson("family", "Nobody", "X"), "NoSuchPerson"),
        (io.RenamePerson("family", "Dad", "phone"), "NotAllowed"),
        (io.RenamePerson("family", "Dad", "PHONE"), "NotAllowed"),
        (io.PlacePerson("family", ME.device_id.raw, "phone"), "NotAllowed"),
        (io.Invite("family", person="phone"), "NotAllowed"),
        (io.Invite("family", person="Phone"), "NotAllowed"),
        (io.PlacePerson("family", b"\1" * 32, "Dad"), "NotAllowed"),
        (io.PlacePerson("family", ME.device_id.raw, "Dad"), "NotAllowed"),
        (io.PlacePerson("family", ME.device_id.raw, "\u202e"), "InvalidArgument"),
        (io.Invite("family", person=""), "InvalidArgument"),
    ],
)
def test_person_commands_that_cannot_work_are_refused(action: io.Action, error: str) -> None:
    wire = pair(io.Invite("family"), None, founder="Dad")
    group = next(iter(wire.a.groups.values()))
    before = len(group.log.order)
    wire.feed(wire.a, io.Command(9, action))
    reply = replies(wire, "laptop")[-1]
    assert reply.error == error, reply
    assert len(group.log.order) == before


def test_a_member_cannot_place_a_device() -> None:
    wire = pair(io.Invite("family"), None)
    phone = wire.b.me.device_id.raw
    wire.feed(wire.b, io.Command(9, io.PlacePerson("family", phone, "Dad")))
    reply = replies(wire, "phone")[-1]
    assert reply.error == "NotAllowed"
    assert "only an admin" in reply.data["message"]
