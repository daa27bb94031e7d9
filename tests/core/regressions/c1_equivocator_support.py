"""Change 1: defeated_when_last follows grants outside the op's causal past.

Chains.before() picks grants by clock value, which is inexact for an
author that equivocated; the fork is not in the revocation's past, so the
branch state (of that past) does not mark the grant EQUIVOCATED and the
walk recurses through it into a grant that *was* vetoed in the past.

A = founder, B = admin, E = member (will equivocate), X = member, O = observer.
  B removes E  ||  A promotes E (the removal vetoes the promotion)
  E (sees the promotion, not the removal) forks at seq 1:
      e_a = rotate               (reaches X and A)
      e_b = promote X to admin   (only to the observer)
  X, having seen r1, g', e_a (not e_b), leaves: r.  Its true support is
  A's add of X only: r takes effect.
  A sees exactly r's past + r and rotates for {A, B}: c (honest).
Observer O1 holds e_b before r, c arrive: r goes through _grow_branch,
defeated_when_last walks r -> e_b (not in r's past) -> g' (vetoed) and
marks r DEFEATED in the branch state, so c (wrapped for {A,B}) is judged
against members {A,B,X} and rejected. Observer O2 gets e_b last: c valid.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

import sys
from covey.core import membership
from covey.core.group import Group
from tests.harness import World, summary

w = World(6, seed="c1-eq")
A, B, E, X, O1, O2 = range(6)
w.act(A, "add_admin", B)
w.act(A, "add", E)
w.act(A, "add", X)
for k in (B, E, X):
    w.sync(A, k)
r1 = w.act(B, "remove", E)            # B removes E
gp = w.act(A, "promote", E)           # concurrently A promotes E (g')
assert r1 and gp
w.sync(A, E)                          # E is admin in its view
clone = Group.replica(w.identities[E], w.replicas[E].id, [op.raw for op in w.replicas[E].log.order])
e_a = w.act(E, "rotate")
e_b = clone.set_role(w.id(X), "admin", w.tick()); w.written.append(e_b)
assert e_a.seq == e_b.seq
# X sees r1, g', e_a
w.sync(A, X); w.sync(B, X); w.deliver([e_a], X)
r = w.act(X, "leave")
assert r is not None
w.sync(X, A)                           # A holds exactly r's past + r
assert w.replicas[A].log.heads == {r.id}
c = w.act(A, "rotate")
assert c is not None and c.parents == (r.id,)
base = [op for op in w.replicas[A].log.order if op.id not in (r.id, c.id)]
o1, o2 = w.replicas[O1], w.replicas[O2]
w.deliver(base + [e_b, r, c], O1)
w.deliver(base + [r, c, e_b], O2)
v1, v2 = o1.log.validity[c.id], o2.log.validity[c.id]
print("verdict of A's rotation c on O1:", v1)
print("verdict of A's rotation c on O2:", v2)
past, _ = o1.log._replay_past(c.parents)
print("from scratch:", membership.check(past, c))
s1, s2 = summary(o1.state), summary(o2.state)
print("current epoch O1:", s1["epoch"][:16], " O2:", s2["epoch"][:16])
print("O1 == full_replay:", summary(o1.log.full_replay()) == s1, " O2 == full_replay:", summary(o2.log.full_replay()) == s2)
bad = v1 != v2 or s1 != s2
print("VULNERABLE" if bad else "OK")
sys.exit(1 if bad else 0)
