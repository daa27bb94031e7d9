"""Change 1: a revocation that follows every head can *win a seniority cycle*,
and then it is effective although an effective revocation in its past (as
settled without it) vetoes a grant of its support.

A founder; A adds X (member) first, then C and D (admins): X is senior to C, D.
  C removes D (r1)   ||   D promotes X (g), D removes C (r2)
In the past P = everything: r1 and r2 attack each other; C is senior, so r1
wins, r2 is defeated and D's promotion of X is vetoed.
X (a member in P) leaves: r, after every head. r1 attacks r through g.
Full settle of P + r: r1, r2, r are all undecided (r1<->r2 cycle, r attacked
by the undecided r1); the most senior author among them is X, so r takes
effect first; r1 attacks an effective one and is defeated; r2 takes effect.
defeated_when_last only looks at P's state (g vetoed) and says DEFEATED.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

import sys
from covey.core import membership
from covey.core.group import Group
from tests.harness import World, summary

w = World(5, seed="c1-cyc")
A, X, C, D, O = range(5)
w.act(A, "add", X)
w.act(A, "add_admin", C)
w.act(A, "add_admin", D)
for k in (X, C, D):
    w.sync(A, k)
r1 = w.act(C, "remove", D)
g = w.act(D, "promote", X)
r2 = w.act(D, "remove", C)
assert r1 and g and r2
w.sync(C, X); w.sync(D, X)
xg = w.replicas[X]
xg.state  # settle
r = w.act(X, "leave")
assert r is not None and xg.log.heads == {r.id}
names = {w.id(k): n for k, n in zip(range(5), "AXCDO")}
def show(s):
    return sorted(names[d] + ":" + m.role for d, m in s.members.items()), s.skipped.get(r.id)
print("X's replica (fast path):   ", show(xg.state))
print("X's full_replay:           ", show(xg.log.full_replay()))
batch = Group.replica(w.identities[O], xg.id, [op.raw for op in xg.log.order])
print("observer, same ops in batch:", show(batch.state))
bad = summary(xg.state) != summary(xg.log.full_replay())

# Consequence: the founder A, which held exactly P, gets r alone (fast path),
# then rotates for the members it sees; O holds the same ops via a batch.
ag = w.replicas[A]
w.sync(C, A); w.sync(D, A); ag.state  # A holds P, settled
w.deliver([r], A)
print("A after r (fast path):     ", show(ag.state))
c = w.act(A, "rotate")
batch.receive(c.raw)
w.act(D, "rotate")  # something concurrent later, so both re-settle
for op in w.written:
    for grp in (ag, batch):
        try: grp.receive(op.raw)
        except Exception: pass
print("A's verdict on its rotation:", ag.log.validity[c.id], "| O's:", batch.log.validity[c.id])
print("after converging: A epoch", ag.state.current_epoch.id.hex()[:12], show(ag.state),
      "| O epoch", batch.state.current_epoch.id.hex()[:12], show(batch.state))
print("PERMANENT DIVERGENCE" if summary(ag.state) != summary(batch.state) else "converged")
bad = bad or summary(ag.state) != summary(batch.state)
print("VULNERABLE" if bad else "OK")
sys.exit(1 if bad else 0)
