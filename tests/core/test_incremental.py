"""The incremental merge equals a from-scratch replay, on random DAGs.

`GroupLog` settles its merged state lazily, resuming from a checkpoint and
judging concurrent branches against cached branch states
(`covey.core.log`). Here checkpoints are taken every few positions (so
restoring one is exercised on small logs), devices act on random stale
views, fork, and receive ops one by one or in batches in random orders,
and after every step each replica's state must equal `full_replay()`:
the whole set replayed from genesis in topological order.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import log as log_module
from covey.core import membership
from covey.core.group import Group
from tests.core.test_merge_rules import adversarial_steps, fork, new_world
from tests.harness import summary


@pytest.fixture(autouse=True)
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(log_module, "MAX_BRANCH_STATES", 2)


def same_as_scratch(group: Group) -> None:
    if group.log.state is None:
        return
    assert summary(group.log.state) == summary(group.log.full_replay())
    assert [op.id for op in group.log.order] == [
        op.id for op in group.log._kahn(list(group.log.ops.values()))
    ]


@given(adversarial_steps, st.integers(0, 2**32), st.booleans())
@settings(max_examples=150, deadline=None)
def test_every_step_equals_a_replay_from_scratch(script, seed: int, batches: bool) -> None:
    world = new_world(seed)
    shuffler = random.Random(seed)
    for kind, a, b, c in script:
        if kind == "act":
            world.act_somehow(a, str(b), c)
        elif kind == "fork":
            fork(world, a, c)
        else:
            # Deliver a random sample of everything written, in random order,
            # as one batch (a sync message) or one op at a time.
            target = world.replicas[int(b) % world.n]
            sample = [op.raw for op in world.written if shuffler.random() < 0.6]
            shuffler.shuffle(sample)
            if batches:
                target.receive_all(sample)
            else:
                world.deliver(sample, int(b) % world.n)
        for group in world.replicas:
            same_as_scratch(group)
    world.converge(shuffle_seed=seed)
    for group in world.replicas:
        same_as_scratch(group)
    verdicts_as_from_scratch(world.replicas[seed % world.n])


def verdicts_as_from_scratch(group: Group) -> None:
    """Every op's stored verdict is the one a replay of its causal past gives.

    (A verdict is judged once, on whatever state the op's path offered: the
    merged state, a branch grown op by op, or a replay. A convergence
    search found branch states that had applied a defeated revocation.)
    """
    log = group.log
    for op in log.order:
        verdict = log.validity[op.id]
        if not op.parents or verdict == log_module.SEQ_REASON:
            continue
        past, _ = log._replay_past(op.parents)
        assert verdict == membership.check(past, op), op.id.hex()


def test_a_long_concurrent_branch_merges_from_a_checkpoint() -> None:
    """Two admins apart for many ops; the merge resumes past the checkpoints before."""
    world = new_world(3)
    for _ in range(12):
        world.act(0, "rotate")
    world.sync(0, 1)
    for i in range(10):  # apart: both sides write
        world.act(0, "rotate" if i % 2 else "policy")
        world.act(1, "add" if i == 0 else "rotate", 3)
    mine = world.replicas[0]
    checkpoints_before = list(mine.log._checkpoints)
    assert checkpoints_before  # (with checkpoints every 3 positions)
    theirs = [op.raw for op in world.replicas[1].log.order]
    outcomes = mine.receive_all(theirs)
    assert all(not isinstance(o, Exception) for o in outcomes)
    same_as_scratch(mine)
    # The checkpoints before the two branches met survive the merge.
    kept = [c.position for c in mine.log._checkpoints]
    assert [c.position for c in checkpoints_before if c.position <= 15] == [
        p for p in kept if p <= 15
    ]
