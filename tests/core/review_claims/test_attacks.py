"""Attacks on recovery claims in the log.

From the adversarial review of recovery claims (2026-12-03): each attack test
plays one attack and asserts that it WORKS. Those marked xfail(strict) are
fixed: the attack's assertions fail now, and the test fails the suite if the
attack ever works again. One, F9, is behaviour decided rather than fixed
(PROTOCOL.md 19.5), and its test pins it.
"""

from __future__ import annotations

import pytest

from covey.core import escrow, membership, shares
from covey.core.group import Group
from covey.core.ops import Claim, OpContent, Witness, request_id, sign_op
from covey.sim.dealing import seeded_dealer
from tests.conftest import SeededRng
from tests.core.test_claims import (
    DAD,
    KID,
    MUM,
    NEW,
    admitted_claim,
    everyone_agrees,
    everyone_has_everything,
    recovery_claim,
    request,
    witnessed,
    write,
)
from tests.harness import World, summary


def agrees_with_full_replay(world: World) -> None:
    for group in world.replicas:
        if group.log.state is not None:
            assert summary(group.log.state) == summary(group.log.full_replay())


# --- F1: section-19 ops are judged in their own past only; the merge re-checks nothing --


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F1a: approvals, claims and completions are judged again at replay",
)
def test_f1a_a_concurrently_removed_holders_approval_still_admits(world: World) -> None:
    """Rule 3 vetoes Mum's approval (she is removed concurrently), but the claim and
    the completion that rest on it are applied: device 4 is admitted on ONE
    holder person's live approval while K = 2, under a dealing that is void."""
    world.act(0, "remove", 2)  # Dad removes Mum (Mum's device was stolen, say) ...
    # ... while, apart, Mum's device approves device 4, Kid approves, Kid claims.
    req = request(world, "admit")
    a = write(world, world.replicas[2].approve(req, "admit", None, world.tick()))
    world.sync(2, 3)
    b = write(world, world.replicas[3].approve(req, "admit", None, world.tick()))
    raw = world.identities[NEW].record_bytes
    claim = write(world, world.replicas[3].claim_admission(raw, [a.id, b.id], world.tick()))
    world.sync(3, 2)
    write(world, world.replicas[2].witness(claim.id, world.tick()))  # Mum witnesses
    world.sync(2, 3)
    write(world, world.replicas[3].witness(claim.id, world.tick()))  # Kid witnesses
    done = write(world, world.replicas[3].complete(claim.id, world.tick(), world.rng))
    state = everyone_agrees(world)
    agrees_with_full_replay(world)
    assert world.id(2) not in state.members  # Mum's removal took effect ...
    assert state.skipped[a.id] == membership.VETOED_AUTHOR  # ... and vetoed her approval
    assert state.dealing is not None
    assert state.dealing.void is not None
    live = state.approvals[(state.dealing.id, req)]
    assert list(live) == [KID]  # one holder person's approval stands, K = 2
    assert done.id in state.applied
    assert state.claims[claim.id].status == "completed"
    assert world.id(NEW) in state.members  # admitted anyway


@pytest.mark.xfail(strict=True, reason="fixed: F1b: a completion is judged again at replay")
def test_f1b_a_completion_that_counted_a_removed_witness_is_applied(world: World) -> None:
    """tests/core/test_claims.py::test_a_removed_witness_counts_for_nothing says 'a
    completion that counted it fails there', but writes no completion. One does
    not fail: the merged claim holds one witness person of the two needed, and
    the completion is applied."""
    claim = admitted_claim(world)  # Mum and Kid approved, Kid claimed; all four hold it
    write(world, world.replicas[0].witness(claim, world.tick()))  # Dad witnesses
    world.sync(0, 3)
    world.act(2, "remove", 3)  # apart: Mum removes Kid ...
    kid = write(world, world.replicas[3].witness(claim, world.tick()))  # ... Kid witnesses
    world.sync(3, 0)
    done = write(world, world.replicas[0].complete(claim, world.tick(), world.rng))
    state = everyone_agrees(world)
    agrees_with_full_replay(world)
    assert state.skipped[kid.id] == membership.VETOED_AUTHOR
    assert state.claims[claim].witnesses == frozenset({DAD})  # one person
    assert membership.witnesses_needed(state, state.claims[claim]) == 2
    assert done.id in state.applied  # applied on one witness person
    assert world.id(NEW) in state.members


def _dishonest_deal(world: World, who: int):
    """An admin deals as `covey recovery setup` does, but keeps the secret and the
    paper share (nothing in the log can tell)."""
    group = world.replicas[who]
    planned = escrow.plan(group.state, 2, 1, 3600)
    dealt = seeded_dealer(SeededRng(f"dishonest-{who}"))(2, planned.count)
    body, paper = escrow.deal_body(group.id, dealt, planned, world.tick(), world.rng)
    deal = write(world, group.deal(body, world.tick()))
    recovery = escrow.recovery_identity(dealt.secret, body.nonce, body.record.created)
    assert recovery.record_bytes == body.record_raw
    return deal, recovery, paper


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F1c: a claim under a vetoed dealing is judged again at replay",
)
def test_f1c_a_removed_admins_dealing_still_recovers_a_person(world: World) -> None:
    """Dad removes Mum (an admin). Apart, Mum's device (not yet aware) deals afresh,
    keeps the secret and the paper, approves 'recover Dad onto device 4' as the
    holder of her own person, and signs the claim as her record. Rule 3 vetoes
    her deal and her approval, but the claim stays pending in the merged state
    (its author is the record: no member check, no re-check of the dealing):
    the honest members witness and complete it after the window, and device 4,
    the removed admin's puppet, replaces Dad, as an admin."""
    world.act(0, "remove", 2)
    world.sync(0, 1)
    world.sync(0, 3)
    deal, recovery, paper = _dishonest_deal(world, 2)
    req = request(world, "recover", DAD)
    release = write(world, world.replicas[2].approve(req, "recover", DAD, world.tick()))
    puppet = Group.replica(world.identities[NEW], world.replicas[2].id)
    for op in world.replicas[2].log.order:
        puppet.receive(op.raw)
    claim = puppet.claim_recovery(
        recovery,
        world.identities[NEW].record_bytes,
        DAD,
        [release.id],
        [paper[0].member_index],
        world.tick(),
    )
    write(world, claim)
    world.deliver([claim], 2)
    everyone_has_everything(world)
    kid = world.replicas[3]
    state = kid.state
    assert deal.id in state.skipped
    assert release.id in state.skipped
    assert state.dealing is not None
    assert state.dealing.id != deal.id
    assert state.claims[claim.id].status == "pending"  # ... but not the claim
    # After the window, the honest node of the only other person witnesses; a member completes.
    assert membership.witnesses_needed(state, state.claims[claim.id]) == 1
    write(world, kid.witness(claim.id, world.tick()))
    done = write(world, kid.complete(claim.id, world.tick(), world.rng))
    state = everyone_agrees(world)
    agrees_with_full_replay(world)
    assert done.id in state.applied
    assert world.id(0) not in state.members
    assert world.id(1) not in state.members
    assert state.members[world.id(NEW)].role == "admin"
    assert state.person(world.id(NEW)) == DAD


# --- F2: the recovery record can fork at any time, undoing a completed recovery ----------


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F2: a completed claim stands against a late rival of its record",
)
def test_f2_a_late_record_fork_undoes_a_completed_recovery(world: World) -> None:
    """Dad's phone (device 0, a holder of Dad's share) is stolen with the paper share.
    Dad recovers onto device 4; the recovery completes and removes devices 0 and
    1. Later the thief opens Dad's share from device 0's copy of the log,
    combines it with the paper, and signs a second op numbered 1 as the spent
    dealing's record. The record 'equivocated': the claim is skipped on every
    replica, so the completion no longer removes 0 and 1 (the thief's phone is
    an admin again) and device 4 is no member; the completion's epoch is still
    appended, wrapped for device 4 and not for the members 0 and 1."""
    claim = recovery_claim(world)
    witnessed(world, claim)
    done = write(world, world.replicas[2].complete(claim, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert world.id(0) not in state.members
    assert state.members[world.id(NEW)].role == "admin"
    deal_op = state.dealing
    assert deal_op is not None
    # The thief (device 0's keys, its old log copy, the paper sheet).
    thief = world.replicas[0]
    dealing = thief.log.state_of([deal_op.id]).dealing  # the dealing as dealt
    dads = escrow.open_share(thief.state, dealing, world.identities[0])
    secret = shares.combine(
        [dads, world.paper[0]],  # type: ignore[attr-defined]
        nonce=dealing.deal.nonce,
        digests={s.index: s.digest for s in dealing.deal.slots},
        threshold=2,
    )
    record = escrow.recovery_identity(secret, dealing.deal.nonce, dealing.deal.record.created)
    fork = sign_op(
        OpContent(thief.id, (deal_op.id,), 1, world.tick(), Witness(claim)),
        record.device_id.raw,
        record.secrets.signing_seed,
    )
    write(world, fork)
    state = everyone_agrees(world)
    agrees_with_full_replay(world)
    assert record.device_id.raw in state.equivocators
    assert state.skipped[claim] == membership.EQUIVOCATED
    assert claim not in state.claims
    assert done.id in state.applied  # the completion is still "applied" ...
    assert world.id(NEW) not in state.members  # ... but device 4 is out
    assert state.members[world.id(0)].role == "admin"  # the stolen phone is back, admin
    assert world.id(1) in state.members
    assert state.current_epoch.id == done.id  # an epoch for device 4, not for 0 and 1
    assert world.id(NEW) in state.current_epoch.recipients
    assert world.id(0) not in state.current_epoch.recipients


# --- F3: the completion removes the lost devices outside rule 3 ---------------------------


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F3: a completion revokes each device it replaces, as a removal does",
)
def test_f3_a_lost_devices_concurrent_add_survives_the_recovery(world: World) -> None:
    """Dad's admin phone (device 0) is stolen; Dad recovers onto device 4, and the
    recovery completes everywhere. Later the thief publishes an add of device 5
    as an admin, written on the phone's old log (concurrent with the completion:
    the set of ops decides, not the time of arrival). The completion replaces devices 0 and 1,
    but not as a revocation (PROTOCOL 19.5 designed `replace` ops, each a
    removal): rule 3 does not veto the thief's concurrent add, which stands when
    the order puts it first (the thief picks the op's ID). A formal removal of
    device 0 in its place vetoes the same add."""
    claim = recovery_claim(world)
    witnessed(world, claim)
    prefix = [op.raw for op in world.replicas[0].log.order]  # what the stolen phone holds
    done = write(world, world.replicas[2].complete(claim, world.tick(), world.rng))
    state = everyone_agrees(world)  # the recovery is done, everywhere, for days ...
    assert world.id(0) not in state.members
    assert world.id(NEW) in state.members
    tries = 0
    while True:  # grind (cheap): an op ID below the completion's
        tries += 1
        thief = Group.replica(world.identities[0], world.replicas[0].id, prefix)
        add = thief.add(world.identities[5].record_bytes, "admin", world.tick(), world.rng)
        if add.id < done.id:
            break
    assert tries < 64
    write(world, add)  # ... then the thief publishes what the stolen phone "wrote offline"
    state = everyone_agrees(world)
    agrees_with_full_replay(world)
    assert done.id in state.applied
    assert world.id(0) not in state.members
    assert add.id in state.applied
    assert state.members[world.id(5)].role == "admin"  # the thief's device stays, admin


def test_f3_control_a_formal_removal_vetoes_the_same_add(world: World) -> None:
    base_ops = list(world.replicas[0].log.order)
    world.act(2, "remove", 0)  # Mum removes Dad's phone ...
    thief = Group.replica(world.identities[0], world.replicas[0].id)
    for op in base_ops:
        thief.receive(op.raw)
    add = write(
        world, thief.add(world.identities[5].record_bytes, "admin", world.tick(), world.rng)
    )
    state = everyone_agrees(world)
    assert state.skipped[add.id] == membership.VETOED_AUTHOR
    assert world.id(5) not in state.members


# --- F4: the recovered role is frozen at the claim; removal/demotion does not stop it ----


@pytest.mark.xfail(strict=True, reason="fixed: F4a: the role is the one at completion")
def test_f4a_a_person_demoted_after_the_claim_comes_back_as_admin(world: World) -> None:
    claim = recovery_claim(world)
    world.sync(2, 0)
    world.act(2, "demote", 0)  # Mum demotes Dad's phone: Dad has no admin device left
    everyone_has_everything(world)
    state = world.replicas[2].state
    assert all(state.members[d].role == "member" for d in state.people[DAD])
    witnessed(world, claim)
    write(world, world.replicas[2].complete(claim, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert state.members[world.id(NEW)].role == "admin"  # Dad's role at the claim


@pytest.mark.xfail(strict=True, reason="fixed: F4b: an admin may veto a recovery")
def test_f4b_a_removed_person_cannot_be_stopped_and_comes_back_as_admin(world: World) -> None:
    """The admins expel Dad (remove devices 0 and 1) while a recovery of Dad is pending.
    Nobody is left who may veto it (only Dad's devices veto a recovery; an admin
    cannot), the other persons' nodes witness it after the window, and it
    completes: 'Dad' is back, as an admin."""
    claim = recovery_claim(world)
    world.sync(2, 0)
    world.act(2, "remove", 1)
    world.act(2, "remove", 0)
    everyone_has_everything(world)
    state = world.replicas[2].state
    assert DAD not in state.people
    import pytest

    from covey.errors import NotAllowed

    with pytest.raises(NotAllowed, match="only a device of the person"):
        world.replicas[2].veto(claim, world.tick())  # the admin cannot stop it
    witnessed(world, claim)
    write(world, world.replicas[2].complete(claim, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert state.members[world.id(NEW)].role == "admin"
    assert state.person(world.id(NEW)) == DAD


# --- F5: request binding: an approval's kind and person are not checked against the claim --


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F5: a claim checks the kind and person of each approval",
)
def test_f5_an_approval_s_kind_is_not_bound_to_its_request(world: World) -> None:
    """`approve.kind`/`person` are free labels: the claim only matches the 32-byte
    request. Dad's own device approves Dad's recovery by labelling it an
    admission (the 'never for its own person' rule is skipped), and Mum, who
    released her share once, approves a second recovery the same way (the
    'release once per dealing' rule is skipped); both count for recovery claims."""
    req = request(world, "recover", DAD)
    own = write(world, world.replicas[0].approve(req, "admit", None, world.tick()))
    state = world.replicas[0].state
    assert state.approvals[(state.dealing.id, req)] == {DAD: own.id}
    write(world, world.replicas[2].approve(req, "recover", DAD, world.tick()))
    other = request_id(world.identities[5].record_bytes, "recover", DAD)
    again = write(world, world.replicas[2].approve(other, "admit", None, world.tick()))
    state = world.replicas[2].state
    assert MUM in state.releases[state.dealing.id]
    assert state.approvals[(state.dealing.id, other)] == {MUM: again.id}
    # A recovery claim for device 5 may list Mum's second 'release' (check only).
    body = Claim(
        "recover",
        world.identities[5].record,
        world.identities[5].record_bytes,
        DAD,
        state.dealing.id,
        (again.id,),
        (world.paper[0].member_index,),  # type: ignore[attr-defined]
    )
    from covey.core.ops import parse_op

    probe = sign_op(
        OpContent(state.group_id, tuple(sorted(world.replicas[2].log.heads)), 1, 0, body),
        state.dealing.deal.record.device_id.raw,
        b"\0" * 32,  # (the signature is not what `check` judges)
    )
    assert membership.check(state, parse_op(probe.raw)) is None
    # And Dad's own-person 'admission' approval counts for Dad's own recovery.
    body = Claim(
        "recover",
        world.identities[NEW].record,
        world.identities[NEW].record_bytes,
        DAD,
        state.dealing.id,
        (own.id,),
        (world.paper[0].member_index,),  # type: ignore[attr-defined]
    )
    world.sync(0, 2)
    state = world.replicas[2].state
    probe = sign_op(
        OpContent(state.group_id, tuple(sorted(world.replicas[2].log.heads)), 1, 0, body),
        state.dealing.deal.record.device_id.raw,
        b"\0" * 32,
    )
    assert membership.check(state, parse_op(probe.raw)) is None


# --- F6: an equivocator is re-admitted by a claim (an add refuses it) ----------------------


@pytest.mark.xfail(strict=True, reason="fixed: F6: a claim refuses an equivocator")
def test_f6_an_equivocator_is_readmitted_through_a_claim(world: World) -> None:
    from covey.core.ops import SetInbox
    from tests.core.test_log import forge

    kid = world.identities[3]
    # Kid's device signs two different ops with one number.
    heads = tuple(sorted(world.replicas[3].log.heads))
    one = forge(world, 3, SetInbox(b"\1" * 32, b"\2" * 32), parents=heads)
    two = forge(world, 3, SetInbox(b"\3" * 32, b"\2" * 32), parents=heads, seq=one.seq)
    world.written += [one, two]
    everyone_has_everything(world)
    world.converge()
    state = world.replicas[2].state
    assert world.id(3) in state.equivocators
    assert world.id(3) not in state.members
    import pytest

    from covey.errors import NotAllowed

    with pytest.raises(NotAllowed, match="equivocated"):
        world.replicas[2].add(kid.record_bytes, "member", world.tick(), world.rng)
    # (Kid held a share: the dealing is void. Mum deals again, for Dad and Mum.)
    world.paper = {}  # (the fixture's paper list: `act` keeps a dict)
    assert world.act(2, "deal", 0) is not None
    world.sync(2, 0)
    # The same device asks to be admitted; Dad and Mum approve; it completes.
    req = request_id(kid.record_bytes, "admit", None)
    a = write(world, world.replicas[2].approve(req, "admit", None, world.tick()))
    world.sync(2, 0)
    b = write(world, world.replicas[0].approve(req, "admit", None, world.tick()))
    claim = write(
        world, world.replicas[0].claim_admission(kid.record_bytes, [a.id, b.id], world.tick())
    )
    write(world, world.replicas[0].witness(claim.id, world.tick()))
    world.sync(0, 2)
    write(world, world.replicas[2].witness(claim.id, world.tick()))
    done = write(world, world.replicas[2].complete(claim.id, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert done.id in state.applied
    assert world.id(3) in state.members
    assert world.id(3) in state.equivocators
    assert world.id(3) in state.current_epoch.recipients


# --- F1d: the record picks its own past: a backdated claim outlives a re-deal and removal -----


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F1d: a claim concurrent with an op that voids its dealing is void",
)
def test_f1d_a_backdated_claim_survives_the_holders_removal_and_a_new_dealing(
    world: World,
) -> None:
    """Kid's device is compromised. It 'releases' to the thief's device 5 for a recovery
    of Dad, and the thief has Kid's share (from the log copy sealed to Kid) and
    the paper: the secret. The admins notice: Mum removes Kid's device and deals
    afresh. The recovery record has written nothing, so its claim may take any
    past holding the deal (number 1 follows nothing): the thief signs it with
    parents just after Kid's release, where the old dealing was current. It is
    valid there, and the merged state keeps it pending under a dealing that is
    replaced and void; the honest nodes witness it and it completes."""
    thief_device = world.identities[5]
    req = request_id(thief_device.record_bytes, "recover", DAD)
    release = write(world, world.replicas[3].approve(req, "recover", DAD, world.tick()))
    kid_state = world.replicas[3].state
    dealing = kid_state.dealing
    kids = escrow.open_share(kid_state, dealing, world.identities[3])
    secret = shares.combine(
        [kids, world.paper[0]],  # type: ignore[attr-defined]
        nonce=dealing.deal.nonce,
        digests={s.index: s.digest for s in dealing.deal.slots},
        threshold=2,
    )
    record = escrow.recovery_identity(secret, dealing.deal.nonce, dealing.deal.record.created)
    everyone_has_everything(world)
    # The admins react: Kid's device out, a fresh dealing for the persons left.
    world.act(2, "remove", 3)
    world.paper = {}
    new_deal = world.act(2, "deal", 0)
    assert new_deal is not None
    everyone_has_everything(world)
    # Later, the thief: a claim whose past ends at Kid's release.
    body = Claim(
        "recover",
        thief_device.record,
        thief_device.record_bytes,
        DAD,
        dealing.id,
        (release.id,),
        (dealing.deal.paper[0].index,),
    )
    claim = sign_op(
        OpContent(world.replicas[2].id, (release.id,), 1, world.tick(), body),
        record.device_id.raw,
        record.secrets.signing_seed,
    )
    write(world, claim)
    everyone_has_everything(world)
    world.deliver([claim], 2)
    mum = world.replicas[2]
    state = mum.state
    assert mum.log.validity[claim.id] is None
    assert state.dealing is not None
    assert state.dealing.id == new_deal.id
    assert state.claims[claim.id].status == "pending"  # ... yet the old claim stands
    assert state.dealing.void is None  # (and the new dealing is not even spent)
    # After the window, Mum's node witnesses (the only other person now) and completes.
    assert membership.witnesses_needed(state, state.claims[claim.id]) == 1
    write(world, mum.witness(claim.id, world.tick()))
    write(world, mum.complete(claim.id, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert state.members[world.id(5)].role == "admin"
    assert state.person(world.id(5)) == DAD
    assert world.id(0) not in state.members
    assert world.id(1) not in state.members


# --- F9: a recovery of an implicit person puts the device in another device's own person ---


def test_f9_decided_a_device_added_again_returns_to_its_own_person_beside_its_replacement(
    world: World,
) -> None:
    """Device 5 joins as a person of its own (implicit: its ID's first 16 bytes). It
    is recovered onto device 4, which the completion places in device 5's
    implicit person (a set_person doing that is refused, PROTOCOL 6.4). Once an
    admin adds device 5 again ('found the old phone'), both are one person: the
    old phone may veto the new one's recoveries and shares its witness slot.
    The review counted it a finding; it is the behaviour decided (PROTOCOL.md
    19.5, "A device found again returns to its own person"), pinned here."""
    from covey.core.ops import implicit_person

    world.act(0, "add", 5)
    everyone_has_everything(world)
    world.sync(0, 5)
    five = implicit_person(world.id(5))
    req = request_id(world.identities[NEW].record_bytes, "recover", five)
    release = write(world, world.replicas[2].approve(req, "recover", five, world.tick()))
    requester = Group.replica(world.identities[NEW], world.replicas[0].id)
    for op in world.replicas[2].log.order:
        requester.receive(op.raw)
    dealing = requester.state.dealing
    mums = escrow.open_share(world.replicas[2].state, dealing, world.identities[2])
    secret = shares.combine(
        [mums, world.paper[0]],  # type: ignore[attr-defined]
        nonce=dealing.deal.nonce,
        digests={s.index: s.digest for s in dealing.deal.slots},
        threshold=2,
    )
    record = escrow.recovery_identity(secret, dealing.deal.nonce, dealing.deal.record.created)
    claim = requester.claim_recovery(
        record,
        world.identities[NEW].record_bytes,
        five,
        [release.id],
        [world.paper[0].member_index],  # type: ignore[attr-defined]
        world.tick(),
    )
    write(world, claim)
    world.deliver([claim], 2)
    everyone_has_everything(world)
    write(world, world.replicas[2].witness(claim.id, world.tick()))
    world.sync(2, 3)
    write(world, world.replicas[3].witness(claim.id, world.tick()))
    world.sync(3, 2)
    write(world, world.replicas[2].complete(claim.id, world.tick(), world.rng))
    everyone_has_everything(world)
    assert world.replicas[2].state.person(world.id(NEW)) == five
    world.act(2, "add", 5)  # the old phone, added again
    state = everyone_agrees(world)
    assert state.person(world.id(5)) == five == state.person(world.id(NEW))
    assert state.people[five] == [world.id(NEW), world.id(5)]


# --- F10: an admin's veto of an admission is undone by re-filing the same approvals ---------


@pytest.mark.xfail(
    strict=True,
    reason="fixed: F10: a vetoed request is spent under its dealing",
)
def test_f10_a_vetoed_admission_is_claimed_again_on_the_same_approvals(world: World) -> None:
    """Mum (an admin) vetoes device 4's admission. Kid files the claim again, listing
    the very approvals the vetoed claim rested on (nothing marks them used), and
    with two witnesses it completes: no holder approved twice, no admin agreed."""
    claim = admitted_claim(world)
    write(world, world.replicas[2].veto(claim, world.tick()))
    everyone_has_everything(world)
    kid = world.replicas[3]
    state = kid.state
    assert state.claims[claim].status == "vetoed"
    old = state.claims[claim].claim.approvals
    again = write(world, kid.claim_admission(world.identities[NEW].record_bytes, old, world.tick()))
    write(world, kid.witness(again.id, world.tick()))  # Kid
    world.sync(3, 0)
    write(world, world.replicas[0].witness(again.id, world.tick()))  # Dad
    done = write(world, world.replicas[0].complete(again.id, world.tick(), world.rng))
    state = everyone_agrees(world)
    assert state.claims[claim].status == "vetoed"
    assert state.claims[again.id].status == "completed"
    assert done.id in state.applied
    assert world.id(NEW) in state.members
