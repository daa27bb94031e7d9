"""Pre-existing (exposed by the clock hint of change 1): a removed admin escapes
the veto of its removal with an *invalid* op that shares a sequence number.

Clocks count any op whose number follows its author's last (valid or not),
but only valid ops are equivocation evidence. So E signs e_a (seq s, invalid:
"promote" itself, already admin) and e_b (seq s, valid: add puppet P as admin)
on the same parents. B's removal of E has e_a in its past, so
clock(removal)[E] = s and log.before(e_b, removal) is True although e_b is
concurrent with it: the removal neither vetoes e_b nor attacks through it.
Rule 3 says a concurrent add by a removed admin is vetoed (worked example 7.1).
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

import sys
from covey.core.ops import OpContent, SetRole, sign_op
from tests.harness import World

def run(with_twin: bool, seed="twin"):
    w = World(5, seed=seed)
    A, B, E, P, O = range(5)
    w.act(A, "add_admin", B); w.act(A, "add_admin", E)
    w.sync(A, B); w.sync(A, E)
    eg = w.replicas[E]
    me = w.identities[E]
    if with_twin:
        seq = eg.log.latest.get(me.device_id.raw, 0) + 1
        content = OpContent(eg.id, tuple(sorted(eg.log.heads)), seq, w.tick(), SetRole(w.id(E), "admin"))
        e_a = sign_op(content, me.device_id.raw, me.secrets.signing_seed)
        w.written.append(e_a)
        w.deliver([e_a], B)
        assert w.replicas[B].log.validity[e_a.id] is not None  # kept, invalid
    r1 = w.act(B, "remove", E)
    # E, unaware of the removal, adds a puppet admin; it grinds the op's time
    # field until the op sorts before its twin (an attacker controls both).
    from covey.core.group import Group
    raws = [op.raw for op in eg.log.order]
    for t in range(1000):
        trial = Group.replica(me, eg.id, raws)
        e_b = trial.add(w.identities[P].record_bytes, "admin", w.clock + 10 + t, w.rng)
        if not with_twin or e_b.id < e_a.id:
            break
    w.replicas[E] = trial
    w.written.append(e_b)
    assert r1 and e_b
    w.converge(shuffle_seed=1)
    s = w.replicas[O].state
    return {w.id(k): k for k in range(5)}, s, e_b, r1, w

names = "ABEPO"
for twin in (False, True):
    ids, s, e_b, r1, w = run(twin)
    members = sorted(names[ids[d]] + ":" + m.role for d, m in s.members.items())
    agree = len({repr(sorted(g.state.members.items())) for g in w.replicas}) == 1
    print(f"with invalid twin={twin}: members={members} e_b skipped={s.skipped.get(e_b.id)!r} replicas agree={agree}")
    if twin:
        vulnerable = w.id(3) in s.members
print("VULNERABLE" if vulnerable else "OK")
sys.exit(1 if vulnerable else 0)
