"""Dealing recovery shares into the log (PROTOCOL.md 19.1): the `deal` op, its rule,
when a dealing turns void, and a holder opening its own share.

Shares are dealt by the edge (`covey.recoverydeal.deal`, OS randomness
inside shamir-mnemonic) and written by `escrow.deal_body`; paper shares and
the holders' opened shares recombine with shamir-mnemonic's own
`combine_mnemonics` (not covey's code) to the secret whose recovery record
the deal op holds.
"""

from __future__ import annotations

import dataclasses

import pytest
from shamir_mnemonic import combine_mnemonics

from covey import recoverydeal
from covey.core import escrow, membership
from covey.core.identity import create_identity
from covey.core.ops import Deal
from covey.errors import InvalidArgument, InvalidInput, MalformedMessage, NotAllowed
from covey.sim.dealing import seeded_dealer
from tests.conftest import NOW, SeededRng
from tests.core.test_log import forge
from tests.harness import World

ALICE = b"a" * 16
BOB = b"b" * 16


@pytest.fixture
def world() -> World:
    """0 founds (admin), 1 is an admin, 2 and 3 members; 2 and 3 are Alice's, 1 is Bob's."""
    world = World(5, seed="dealing")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.act(0, "add", 3)
    group = world.replicas[0]
    for device, person, name in ((2, ALICE, "Alice"), (3, ALICE, "Alice"), (1, BOB, "Bob")):
        world.written.append(group.set_person(world.id(device), person, name, world.tick()))
    for j in (1, 2, 3):
        world.sync(0, j)
    return world


def deal(
    world: World,
    who: int = 0,
    threshold: int = 2,
    paper: int = 1,
    holders=None,
    veto: int = 3600,
    seed: str = "deal",
):
    """Device `who` deals as `covey recovery setup` does (every random byte from `seed`,
    so a run replays); (the op, the paper shares, the secret)."""
    group = world.replicas[who]
    planned = escrow.plan(group.state, threshold, paper, veto, holders)
    dealt = seeded_dealer(SeededRng(f"{seed}-{world.clock}"))(threshold, planned.count)
    body, paper_shares = escrow.deal_body(group.id, dealt, planned, world.tick(), SeededRng("seal"))
    op = group.deal(body, world.tick())
    world.written.append(op)
    return op, paper_shares, dealt.secret


def everyone_agrees(world: World) -> membership.GroupState:
    world.converge()
    summaries = world.summaries()
    assert all(s == summaries[0] for s in summaries)
    states = [g.state for g in world.replicas if g.log.state is not None]
    assert len({None if s.dealing is None else (s.dealing.id, s.dealing.void) for s in states}) == 1
    return world.replicas[0].state


def test_a_dealing_gives_each_person_one_share_on_each_of_their_devices(world: World) -> None:
    op, paper, _ = deal(world)
    state = everyone_agrees(world)
    dealing = state.dealing
    assert dealing is not None
    assert dealing.id == op.id
    assert dealing.void is None
    people = state.people
    holders = [slot.person for slot in dealing.deal.slots if slot.person is not None]
    assert sorted(holders) == sorted(people)  # one slot per person, however many devices
    assert len(paper) == 1
    assert dealing.holders[world.id(2)] == dealing.holders[world.id(3)]  # Alice's one share
    # Each of Alice's devices opens the same share, on its own replica.
    two = escrow.open_share(
        world.replicas[2].state, world.replicas[2].state.dealing, world.identities[2]
    )
    three = escrow.open_share(
        world.replicas[3].state, world.replicas[3].state.dealing, world.identities[3]
    )
    assert two == three
    with pytest.raises(NotAllowed, match="holds no share"):
        escrow.open_share(state, dealing, world.identities[4])


def test_shares_from_the_log_and_paper_recombine_with_the_librarys_own_combine(
    world: World,
) -> None:
    """Issue 11, part 8: covey's shares are standard SLIP-39; the secret the library
    recombines gives the recovery record the deal op holds (its keys and so its
    device ID), which only K shares together can sign as."""
    op, paper, secret = deal(world, threshold=3, paper=1)
    dealing = everyone_agrees(world).dealing
    assert dealing is not None
    alice = escrow.open_share(world.replicas[2].state, dealing, world.identities[2])
    bob = escrow.open_share(world.replicas[1].state, dealing, world.identities[1])
    words = [alice.mnemonic(), bob.mnemonic(), paper[0].mnemonic()]
    recovered = combine_mnemonics(words)
    assert recovered == secret
    rebuilt = escrow.recovery_identity(recovered, dealing.deal.nonce, op.content.time)
    assert rebuilt.record.device_id == dealing.deal.record.device_id
    assert rebuilt.record.box_key == dealing.deal.record.box_key
    with pytest.raises(Exception):  # noqa: B017, PT011 (the library's own refusal)
        combine_mnemonics(words[:2])


@pytest.mark.parametrize(
    ("threshold", "paper", "holders", "error"),
    [
        (1, 0, None, "at least 2"),
        (2, 2, None, "at most 1 paper"),
        (5, 1, None, "needs at least 5 shares"),
        (2, 0, [b"z" * 16], "a holder must be a person"),
        (2, -1, None, "cannot be negative"),
    ],
)
def test_a_dealing_that_cannot_work_is_refused_before_dealing(
    world: World, threshold: int, paper: int, holders, error: str
) -> None:
    with pytest.raises(InvalidArgument, match=error):
        escrow.plan(world.replicas[0].state, threshold, paper, 3600, holders)


def test_a_member_cannot_deal(world: World) -> None:
    with pytest.raises(NotAllowed, match="not an admin"):
        deal(world, who=2)


def forged_deal(world: World, **changes) -> bool:
    """Whether replica 0 takes a deal by device 0, built right and then changed."""
    group = world.replicas[0]
    planned = escrow.plan(group.state, 2, 1, 3600)
    dealt = recoverydeal.deal(2, planned.count)
    body, _ = escrow.deal_body(group.id, dealt, planned, world.tick(), SeededRng("f"))
    try:
        op = forge(world, 0, dataclasses.replace(body, **changes))
    except InvalidInput:  # (refused as it is parsed)
        return False
    received = group.receive(op.raw)
    return received.outcome == "applied"


def test_the_rule_refuses_deals_built_wrong(world: World) -> None:
    group = world.replicas[0]
    planned = escrow.plan(group.state, 2, 1, 3600)
    dealt = recoverydeal.deal(2, planned.count)
    body, _ = escrow.deal_body(group.id, dealt, planned, world.tick(), SeededRng("f"))
    alice = next(slot for slot in body.slots if slot.person == ALICE)
    # A holder person's share sealed to only one of its two devices.
    short = dataclasses.replace(alice, copies=alice.copies[:1])
    slots = tuple(short if s is alice else s for s in body.slots)
    assert not forged_deal(world, slots=slots)
    # Paper reaching the threshold; a threshold above the shares.
    paper = tuple(dataclasses.replace(s, person=None, copies=()) for s in body.slots)
    assert not forged_deal(world, slots=paper)
    assert not forged_deal(world, threshold=len(body.slots) + 1)
    # A recovery record that is a device of the group; one not named as such.
    member = create_identity("recovery", NOW, SeededRng("a device named recovery"))
    world.written.append(group.add(member.record_bytes, "member", world.tick(), world.rng))
    assert not forged_deal(world, record=member.record, record_raw=member.record_bytes)
    other = world.identities[4]
    assert not forged_deal(world, record=other.record, record_raw=other.record_bytes)
    # Built right, it is taken.
    assert forged_deal(world)


@pytest.mark.parametrize(
    "slots",
    [
        [[0, b"a" * 16, b"d" * 32, []]],  # a holder with no copy
        [[0, b"", b"d" * 32, [[b"\1" * 32, b"x"]]]],  # paper with a copy
        [[1, b"", b"d" * 32, []], [0, b"", b"d" * 32, []]],  # out of order
        [
            [0, b"a" * 16, b"d" * 32, [[b"\1" * 32, b"x"]]],
            [1, b"a" * 16, b"d" * 32, [[b"\2" * 32, b"x"]]],
        ],
        [[16, b"", b"d" * 32, []]],  # index past SLIP-39's 16
        [[0, b"a" * 15, b"d" * 32, [[b"\1" * 32, b"x"]]]],
        [[0, b"", b"d" * 31, []]],
        [],
    ],
)
def test_malformed_slots_are_refused(slots) -> None:
    """Each is refused by the slots' own checks, before the record is read."""
    body = {"k": 2, "nonce": b"n" * 16, "rec": b"", "slots": slots, "veto": 3600}
    with pytest.raises(MalformedMessage, match=r"slot|sealed|person|index|digest"):
        Deal.from_wire(body)


def test_a_dealing_turns_void_when_a_holder_or_the_dealer_goes_or_a_holder_moves(
    world: World,
) -> None:
    deal(world)
    world.act(0, "remove", 3)  # one of Alice's devices
    assert world.replicas[0].state.dealing.void == "a device holding a share was removed"
    deal(world)
    assert world.replicas[0].state.dealing.void is None
    world.written.append(world.replicas[0].set_person(world.id(2), BOB, "Bob", world.tick()))
    assert (
        world.replicas[0].state.dealing.void == "a device holding a share moved to another person"
    )
    world.sync(0, 1)
    deal(world, who=1)
    world.sync(1, 0)
    assert world.replicas[0].state.dealing.void is None
    world.act(0, "remove", 1)  # the dealer
    assert world.replicas[0].state.dealing.void == "its dealer was removed"
    # A rename is no move: the dealing stays usable.
    deal(world)
    world.written.append(world.replicas[0].set_person(world.id(2), BOB, "Robert", world.tick()))
    assert world.replicas[0].state.dealing.void is None
    everyone_agrees(world)


def test_a_deal_concurrent_with_a_holders_removal_is_void_on_every_replica(world: World) -> None:
    world.sync(0, 1)
    world.act(0, "remove", 3)  # apart: 0 removes one of Alice's devices ...
    deal(world, who=1)  # ... while 1 deals to it
    state = everyone_agrees(world)
    assert state.dealing is not None
    assert state.dealing.void == "a device holding a share was removed"


#: Which of the two orders each seed gave (both must come up: checked below).
orders: set[bool] = set()


@pytest.mark.parametrize("seed", range(12))
def test_a_deal_concurrent_with_a_holders_move_is_void_whatever_the_order(
    world: World, seed: int
) -> None:
    """The op IDs decide which of two concurrent ops the replay applies first: a
    fresh dealing each run gives both orders (a removal or move replayed before
    the deal must void it as one replayed after does)."""
    world.sync(0, 1)
    move = world.replicas[0].set_person(world.id(3), BOB, "Bob", world.tick())
    world.written.append(move)
    op, _, _ = deal(world, who=1, seed=f"order-{seed}")
    orders.add(op.id < move.id)
    state = everyone_agrees(world)
    assert state.dealing is not None
    assert state.dealing.void == "a device holding a share moved to another person"


def test_a_removed_admins_concurrent_deal_is_vetoed(world: World) -> None:
    world.sync(0, 1)
    world.act(0, "remove", 1)  # apart: 0 removes admin 1 ...
    op, _, _ = deal(world, who=1)  # ... which deals
    state = everyone_agrees(world)
    assert state.skipped[op.id] == membership.VETOED_AUTHOR
    assert state.dealing is None


def test_the_node_deals_only_with_a_dealer_and_replies_with_the_paper_once() -> None:
    from covey.core.node import Node, NodeConfig, io
    from tests.core.test_node import ME

    without = Node(ME)
    list(without.handle(io.Command(1, io.CreateGroup("family")), NOW, SeededRng("a")))
    [reply] = [
        e
        for e in without.handle(io.Command(2, io.SetupRecovery("family", 2)), NOW, SeededRng("b"))
        if isinstance(e, io.Reply)
    ]
    assert reply.error == "NotAllowed"
    assert "cannot deal" in reply.data["message"]
    node = Node(ME, config=NodeConfig(dealer=recoverydeal.deal))
    list(node.handle(io.Command(1, io.CreateGroup("family")), NOW, SeededRng("a")))
    # One person only: two shares need a paper one, and paper must stay under K.
    replies = [
        e
        for e in node.handle(
            io.Command(2, io.SetupRecovery("family", 2, paper=1, veto=120)), NOW, SeededRng("c")
        )
        if isinstance(e, io.Reply)
    ]
    assert replies[-1].error is None, replies
    document = replies[-1].data
    assert len(document["paper_shares"]) == 1
    group = next(iter(node.groups.values()))
    assert group.state.dealing is not None
    assert group.state.dealing.deal.veto == 120
    # The words are nowhere in the node's state or log.
    words = " ".join(document["paper_shares"][0]["words"]).encode()
    assert not any(words in op.raw for op in group.log.order)
    for veto in (59, 31 * 86400):
        [refused] = [
            e
            for e in node.handle(
                io.Command(3, io.SetupRecovery("family", 2, paper=1, veto=veto)),
                NOW,
                SeededRng("d"),
            )
            if isinstance(e, io.Reply)
        ]
        assert refused.error == "InvalidArgument"


def test_the_seeds_above_gave_both_orders() -> None:
    assert orders == {True, False}


# --- what the review of the dealing found ------------------------------------------------


def test_the_dealer_cannot_reopen_the_copies_it_sealed(world: World) -> None:
    """Review, 2: copies were boxes from the dealer's key, which opens a box as
    well as the recipient's: a dealer demoted (or its backup) rebuilt the
    secret from the log. Copies are sealed boxes to the holder alone now."""
    from covey.core import crypto
    from covey.errors import DecryptionFailed

    deal(world, who=1)  # Bob's admin deals ...
    dealing = everyone_agrees(world).dealing
    assert dealing is not None
    dealer = world.identities[1]
    for slot in dealing.deal.slots:
        for device, sealed in slot.copies:
            if device == dealer.device_id.raw:
                continue  # (its own person's copy is its own)
            with pytest.raises(DecryptionFailed):
                crypto.open_anonymous(dealer.secrets.box_secret, sealed)
            holder = world.replicas[0].state.devices[device]
            with pytest.raises(DecryptionFailed):  # (as a box from the dealer opened)
                crypto.box_unwrap(dealer.secrets.box_secret, holder.box_key, sealed)
    # ... and each holder still opens its own.
    assert escrow.open_share(world.replicas[2].state, dealing, world.identities[2])


@pytest.mark.parametrize("before_the_deal", [True, False])
def test_a_holder_that_equivocates_voids_the_dealing(world: World, before_the_deal: bool) -> None:
    """Review, 4: a holder (or dealer) that signs two ops with one number is
    treated as removed, but the dealing stayed usable; now it is void, whether
    the forks come before the deal in the replay or after it."""
    from covey.core.ops import SetInbox

    if not before_the_deal:
        deal(world)
        world.sync(0, 3)
    heads = tuple(sorted(world.replicas[3].log.heads))
    seq = world.replicas[3].log.latest.get(world.id(3), 0) + 1
    forks = [
        forge(world, 3, SetInbox(bytes([k]) * 32, bytes([k]) * 32), parents=heads, seq=seq)
        for k in (1, 2)
    ]
    world.written += forks
    if before_the_deal:
        deal(world)  # (device 0 has not seen the forks: concurrent)
    state = everyone_agrees(world)
    assert world.id(3) in state.equivocators
    assert state.dealing is not None
    assert state.dealing.void == "a device holding a share equivocated"


def test_a_recovery_record_is_never_a_member_nor_dealt_twice(world: World) -> None:
    """Review, 9: an admin could add a dealing's recovery record as a member (even
    an admin), so K holders together acted with no claim and no window."""
    op, _, _ = deal(world)
    dealing = everyone_agrees(world).dealing
    assert dealing is not None
    with pytest.raises(NotAllowed, match="recovery record"):
        world.replicas[0].add(dealing.deal.record_raw, "admin", world.tick(), world.rng)
    group = world.replicas[0]
    again = dataclasses.replace(op.body, nonce=b"\x01" * 16)
    with pytest.raises(NotAllowed, match="a device the group knows"):
        group.deal(again, world.tick())
