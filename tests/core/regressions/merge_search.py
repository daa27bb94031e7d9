"""Random adversarial search for change 1 (merge).  usage: search_c1.py START COUNT [small]"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

import contextlib, random, sys, time, traceback
from covey.core import log as log_module, membership
from covey.core.group import Group
from covey.errors import CoveyError
from tests.core.test_merge_rules import RIGHTS_ACTIONS, fork, new_world
from tests.harness import WEIGHTED_ACTIONS, summary

ACTS = RIGHTS_ACTIONS + WEIGHTED_ACTIONS + ("leave", "remove", "add", "add_admin", "demote", "promote")

def fork_rights(world, who, copies, r):
    """`who` signs `copies` different rights ops with one sequence number (clones of its replica)."""
    rep = world.replicas[who]
    if rep.log.state is None or world.id(who) not in rep.log.state.members:
        return
    raws = [op.raw for op in rep.log.order]
    made = []
    for k in range(copies):
        clone = Group.replica(world.identities[who], rep.id, raws)
        saved = world.replicas[who]
        world.replicas[who] = clone
        op = world.act(who, r.choice(ACTS), r.randint(0, world.n - 1))
        world.replicas[who] = saved
        if op is not None:
            made.append((clone, op))
    if made:
        # the forger goes on from one of them
        world.replicas[who] = made[r.randrange(len(made))][0]

def restart(world, k, r):
    g = world.replicas[k]
    if g.log.state is None:
        return
    if r.random() < 0.5:
        raws = [op.raw for op in g.log.order]
        r.shuffle(raws)
        world.replicas[k] = Group.replica(g.me, g.id, raws)
    else:
        raws = [op.raw for op in g.log.ops.values()]  # arrival order
        verdicts = {i: g.log.verdict(i) for i in g.log.ops}
        world.replicas[k] = Group.restore(g.me, g.id, raws, [], dict(g.keys), verdicts, g.bad_links)

def check(world, tag):
    sums = []
    for g in world.replicas:
        if g.log.state is None:
            continue
        s = summary(g.state)
        f = summary(g.log.full_replay())
        if s != f:
            return f"{tag}: state != full_replay"
        for op in g.log.order:
            v = g.log.validity[op.id]
            if not op.parents or v == log_module.SEQ_REASON:
                continue
            past, _ = g.log._replay_past(op.parents)
            if v != membership.check(past, op):
                return f"{tag}: verdict {op.id.hex()[:12]} stored={v!r} scratch={membership.check(past, op)!r}"
        sums.append(s)
    return None

def one(seed, small):
    r = random.Random(seed)
    world = new_world(seed)
    for _ in range(r.randint(10, 120)):
        k = r.random()
        if k < 0.40:
            world.act_somehow(r.randint(0, 5), r.choice(ACTS), r.randint(0, 5))
        elif k < 0.62:
            world.sync(r.randint(0, 5), r.randint(0, 5))
            world.replicas[r.randint(0, 5)].log.state
        elif k < 0.66:
            fork(world, r.randint(0, 5), r.randint(2, 3))
        elif k < 0.78:
            fork_rights(world, r.randint(0, 5), r.randint(2, 3), r)
        elif k < 0.90:
            tgt = world.replicas[r.randint(0, 5)]
            sample = [op.raw for op in world.written if r.random() < 0.5]
            r.shuffle(sample)
            if r.random() < 0.5:
                tgt.receive_all(sample)
            else:
                for raw in sample:
                    with contextlib.suppress(CoveyError):
                        tgt.receive(raw)
        elif k < 0.95:
            if world.written:
                op = world.written[r.randrange(len(world.written))]
                world.deliver([op.raw], r.randint(0, 5))
        else:
            restart(world, r.randint(0, 5), r)
    world.converge(shuffle_seed=seed)
    sums = world.summaries()
    if any(s != sums[0] for s in sums):
        diff = [k for k in sums[0] if any(s[k] != sums[0][k] for s in sums)]
        return f"replicas differ in {diff}"
    return check(world, "converged")

if __name__ == "__main__":
    start, count = int(sys.argv[1]), int(sys.argv[2])
    small = len(sys.argv) > 3
    if small:
        log_module.CHECKPOINT_EVERY = 3
        log_module.MAX_BRANCH_STATES = 2
    t0 = time.time()
    bad = 0
    for seed in range(start, start + count):
        try:
            res = one(seed, small)
        except Exception as exc:
            res = "EXC " + repr(exc)[:200]
        if res:
            bad += 1
            print(seed, res, flush=True)
        if time.time() - t0 > float(__import__('os').environ.get('LIMIT', 840)):
            print("time limit at seed", seed); break
    print("done", seed - start + 1, "bad", bad, "in", round(time.time() - t0), "s", flush=True)
