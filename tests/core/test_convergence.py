"""Any delivery order converges; the incremental path equals a full replay."""

from __future__ import annotations

import random

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import membership
from tests.harness import WEIGHTED_ACTIONS, World, summary

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("act"),
            st.integers(0, 4),
            st.sampled_from(WEIGHTED_ACTIONS),
            st.integers(0, 4),
        ),
        st.tuples(st.just("sync"), st.integers(0, 4), st.integers(0, 4), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)


def run(world: World, script: list[tuple[str, int, str | int, int]]) -> None:
    for kind, a, b, c in script:
        if kind == "act":
            world.act_somehow(a, str(b), c)
        else:
            world.sync(a, int(b))


def full_replay(group) -> dict:
    log = group.log
    order = log._topological_order()
    ids = {op.id for op in order}
    equivocations = {d: f for d, f in log.equivocations.items() if f[1] in ids and f[2] in ids}
    return summary(membership.replay(order, log.validity, log.clocks, equivocations))


@given(steps, st.integers(0, 2**32))
@settings(max_examples=150)
def test_any_delivery_order_converges(script, seed: int) -> None:
    world = World(5, seed=f"conv-{seed % 7}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    world.converge(shuffle_seed=seed)
    first, *rest = world.summaries()
    for other in rest:
        assert other == first


@given(steps, st.integers(0, 2**32))
@settings(max_examples=150)
def test_incremental_state_equals_full_replay(script, seed: int) -> None:
    world = World(5, seed=f"incr-{seed % 5}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    for group in world.replicas:
        if group.log.state is not None:
            assert summary(group.log.state) == full_replay(group)
    world.converge(shuffle_seed=seed)
    for group in world.replicas:
        assert summary(group.log.state) == full_replay(group)


@given(st.integers(0, 2**32))
def test_arrival_order_of_one_log_does_not_matter(seed: int) -> None:
    world = World(4, seed="perm")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.sync(0, 1)
    world.act(1, "remove", 0)  # concurrent with the next two
    world.act(0, "add", 3)
    world.act(0, "demote", 1)
    world.sync(1, 2)
    world.act(2, "rotate")
    ops = [op.raw for op in world.written]
    shuffled = ops[:] + ops[:3]
    random.Random(seed).shuffle(shuffled)
    fresh = World(4, seed="perm")
    fresh.deliver(shuffled, 3)
    world.converge()
    assert summary(fresh.replicas[3].state) == summary(world.replicas[0].state)


@given(steps, st.integers(0, 2**32))
@settings(max_examples=100)
def test_removed_devices_cannot_open_what_members_seal_after_seeing_it(script, seed) -> None:
    from covey.core.seal import open_bytes, seal_bytes
    from covey.errors import KeyUnavailable, NeedsRotation, NotAMember
    from tests.conftest import SeededRng

    world = World(5, seed=f"rm-{seed % 5}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    sealed = []
    for i, group in enumerate(world.replicas):
        if group.log.state is None:
            continue
        try:
            data = seal_bytes(group, b"secret", b"", SeededRng(str(i)))
        except NeedsRotation:
            world.act(i, "heal")
            data = seal_bytes(group, b"secret", b"", SeededRng(str(i)))
        except NotAMember:
            continue
        removed = set(group.state.devices) - set(group.state.members)
        sealed.append((i, data, removed))
    world.converge(shuffle_seed=seed)
    for i, data, removed in sealed:
        for j in range(world.n):
            if world.id(j) not in removed:
                continue
            reader = world.replicas[j]
            with pytest.raises(KeyUnavailable):
                open_bytes(lambda _gid, r=reader: r, data)
