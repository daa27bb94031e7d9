"""Replicas that diverged through a voided completion (F8).

From the adversarial review of recovery claims (2026-12-03): each attack test
plays one attack and asserts that it WORKS. Those marked xfail(strict) are
fixed: the attack's assertions fail now, and the test fails the suite if the
attack ever works again. (None of these files' findings is still open.)
"""

from __future__ import annotations

import pytest

from covey.core import membership
from tests.core.test_claims import (
    NEW,
    admitted_claim,
    everyone_has_everything,
    write,
)
from tests.harness import World, summary


@pytest.mark.xfail(strict=True, reason="fixed: F8: a voided completion supports nothing")
def test_f8_fast_path_and_full_replay_disagree_through_a_voided_completion(world: World) -> None:
    claim = admitted_claim(world)  # Mum and Kid approved device 4; Kid claimed
    write(world, world.replicas[0].witness(claim, world.tick()))  # Dad
    world.sync(0, 2)
    write(world, world.replicas[2].witness(claim, world.tick()))  # Mum
    everyone_has_everything(world)
    # Branch A: Mum adds device 5, which completes the admission.
    add5 = world.act(2, "add", 5)
    world.sync(2, 5)
    done = write(world, world.replicas[5].complete(claim, world.tick(), world.rng))
    # Branch B: Dad removes Mum (vetoing her add of 5), vetoes the admission
    # (voiding the concurrent completion), and adds device 4 himself.
    remove_mum = world.act(0, "remove", 2)
    write(world, world.replicas[0].veto(claim, world.tick()))
    add4 = world.act(0, "add", NEW)
    # Device 4 hears everything, then leaves: an op that follows every head.
    world.sync(5, NEW)
    world.sync(0, NEW)
    d = world.replicas[NEW]
    state = d.state
    assert state.skipped[done.id] == membership.VOIDED
    assert state.skipped[add5.id] == membership.VETOED_AUTHOR
    assert remove_mum.id in state.in_force
    assert add4.id in state.applied
    assert not d.log.stale
    leave = world.act(NEW, "leave", NEW)
    assert leave is not None
    incremental = summary(d.log.state)
    full = summary(d.log.full_replay())
    # The fast path took the leave as defeated; the full replay applies it.
    assert d.log.state.skipped.get(leave.id) == membership.DEFEATED
    assert full["skipped"].get(leave.id.hex()) is None
    assert incremental != full
    assert world.id(NEW) in d.log.state.members
    assert world.id(NEW) not in d.log.full_replay().members


@pytest.mark.xfail(strict=True, reason="fixed: F8: a voided completion supports nothing")
def test_f8_two_replicas_holding_the_same_ops_disagree_and_stay_so(world: World) -> None:
    """Device 4's replica took its leave on the fast path, Dad's after a settle: same
    ops, different members; and later ops that follow every head keep it so."""
    claim = admitted_claim(world)
    write(world, world.replicas[0].witness(claim, world.tick()))
    world.sync(0, 2)
    write(world, world.replicas[2].witness(claim, world.tick()))
    everyone_has_everything(world)
    world.act(2, "add", 5)
    world.sync(2, 5)
    write(world, world.replicas[5].complete(claim, world.tick(), world.rng))
    world.act(0, "remove", 2)
    write(world, world.replicas[0].veto(claim, world.tick()))
    world.act(0, "add", NEW)
    world.sync(5, NEW)
    world.sync(0, NEW)
    world.replicas[NEW].state  # noqa: B018
    leave = world.act(NEW, "leave", NEW)
    assert leave is not None
    world.sync(NEW, 0)  # Dad gets branch A and the leave: a settle
    dad, d = world.replicas[0], world.replicas[NEW]
    assert set(dad.log.ops) == set(d.log.ops)
    assert world.id(NEW) not in dad.state.members
    assert world.id(NEW) in d.state.members
    # Dad writes on (each op follows every head on both replicas).
    for _ in range(3):
        op = world.act(0, "rotate", 0)
        assert op is not None
        world.deliver([op], NEW)
    assert set(dad.log.ops) == set(d.log.ops)
    assert summary(dad.state) != summary(d.state)
    assert world.id(NEW) in d.state.members  # still


@pytest.mark.xfail(strict=True, reason="fixed: F8: a voided completion supports nothing")
def test_f8_the_replicas_then_judge_the_same_op_differently(world: World) -> None:
    """Worse: a verdict is kept for good. Dad's next rotation is valid on Dad's replica
    and invalid on device 4's (wrapped for 'exactly the members' of two different
    states): the replicas hold the same ops and can never agree again, even after
    a settle."""
    claim = admitted_claim(world)
    write(world, world.replicas[0].witness(claim, world.tick()))
    world.sync(0, 2)
    write(world, world.replicas[2].witness(claim, world.tick()))
    everyone_has_everything(world)
    world.act(2, "add", 5)
    world.sync(2, 5)
    write(world, world.replicas[5].complete(claim, world.tick(), world.rng))
    world.act(0, "remove", 2)
    write(world, world.replicas[0].veto(claim, world.tick()))
    world.act(0, "add", NEW)
    world.sync(5, NEW)
    world.sync(0, NEW)
    world.replicas[NEW].state  # noqa: B018
    assert world.act(NEW, "leave", NEW) is not None
    world.sync(NEW, 0)
    dad, d = world.replicas[0], world.replicas[NEW]
    rotate = world.act(0, "rotate", 0)
    world.deliver([rotate], NEW)
    assert dad.log.validity[rotate.id] is None
    assert d.log.validity[rotate.id] == "the new epoch must be wrapped for exactly the members"
    # A fresh replica fed Dad's ops in Dad's order: a third state.
    from covey.core.group import Group

    fresh = Group.replica(world.identities[5], dad.id, [op.raw for op in dad.log.order])
    # (it took the leave on its fast path too, then settled: a third state)
    assert fresh.log.validity[rotate.id] == d.log.validity[rotate.id]
    assert world.id(NEW) not in fresh.state.members
    assert summary(fresh.state) != summary(dad.state)
    assert summary(fresh.state) != summary(d.state)
    # A settle on device 4 (a concurrent op arrives) does not heal it: the verdict stays.
    world.act(2, "rotate", 0)  # Mum (removed; her op is concurrent) writes, any op
    world.sync(2, NEW)
    world.sync(2, 0)
    assert summary(d.state) != summary(dad.state)
