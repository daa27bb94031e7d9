"""Finding: a cached branch state ignores a fork the op itself creates with an op in its past.

M (a member) writes X with a skipped sequence number (invalid, kept), then Y (valid, parent X),
then Z with X's number (parent Y): Z forks with its own ancestor X, so in the state of Z's past
(Z included) M is an equivocator and no member. The replica that judged Z against a *cached
branch* (because it had a concurrent op of its own) grows the branch by Z as if nothing happened;
the next op on that branch (an honest member's rotation, wrapped without M) is then judged
invalid there and valid everywhere else: honest replicas disagree forever.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403

w = World(5, seed="selffork")
A, B, C, M = 0, 1, 2, 3
w.act(A, "add_admin", B); w.act(A, "add", C); w.act(A, "add", M)
for j in range(1, 5):
    w.sync(A, j)
members = [A, B, C, M]

# A writes Q, kept to itself for now (a concurrent op on replica 0).
Q = w.act(A, "rotate")
heads = sorted(w.replicas[C].log.heads)
s = w.replicas[C].log.latest.get(w.id(M), 0)
X = craft(w, M, heads, s + 2, rotate_body(w, M, members))        # skips a number: invalid
Y = craft(w, M, [X.id], s + 1, rotate_body(w, M, members))       # valid
Z = craft(w, M, [Y.id], s + 2, rotate_body(w, M, members))       # same number as X, X in its past

for op in (X, Y, Z):
    recv(w.replicas[C], op)
W = w.act(C, "rotate")   # honest C: in its merged view M equivocated and is gone
print("C's view: M member?", w.id(M) in w.replicas[C].state.members, "W validity at C:", w.replicas[C].log.validity[W.id])

for r in (A, B):
    for op in (X, Y, Z, W):
        recv(w.replicas[r], op)
print("W validity at A (had a concurrent op, used cached branch):", w.replicas[A].log.validity[W.id])
print("W validity at B (no concurrent op):", w.replicas[B].log.validity[W.id])

w.converge(duplicates=False)
sums = w.summaries()
for k, sm in enumerate(sums):
    print(k, "epoch", sm["epoch"][:12], "skipped W:", sm["skipped"].get(W.id.hex()))
print("replicas agree:", all(sm == sums[0] for sm in sums))
