"""Finding: a cached branch applies an op the replay skips because its author equivocated.

check() only asks whether the author is a member with the right; the replay also skips every op
of an equivocator from its forked number on. An equivocator can still be a member: added twice
concurrently (by A and by B), it forks; in the order the removal at its first fork comes before
B's add, which (judged in its own past, where there is no fork) re-adds it. Its next op Y (a
leave, merging both forks) passes check() and _grow_branch applies it (M gone in the branch),
while the replay of the same past skips Y (M still a member). An honest admin's rotation Z on
top of Y (wrapped for M, since M is a member in every merged view) is then judged invalid by a
replica that had Y's branch cached, valid by every other: divergence, as in
repro_selffork_branch.py, with no sequence skip at all.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from covey.core.ops import Remove


def grind(make, pred):
    for t in range(10**6):
        op = make(t)
        if pred(op):
            return op
        w.written.pop()


w = World(5, seed="eqbranch")
A, B, M, R_ = 0, 1, 2, 3
w.act(A, "add_admin", B)
for j in (B, R_):
    w.sync(A, j)
H = sorted(w.replicas[A].log.heads)
sA = w.replicas[A].log.latest[w.id(A)]; sB = w.replicas[A].log.latest.get(w.id(B), 0)
addA = grind(lambda t: craft(w, A, H, sA + 1, add_body(w, A, M, "member", [A, B, M]), t=t), lambda op: op.id[0] < 0x40)
addB = grind(lambda t: craft(w, B, H, sB + 1, add_body(w, B, M, "member", [A, B, M]), t=t), lambda op: op.id[0] > 0xC0)
X1 = grind(lambda t: craft(w, M, [addA.id], 1, rotate_body(w, M, [A, B, M]), t=t), lambda op: op.id < addB.id)
X2 = craft(w, M, [addA.id], 1, rotate_body(w, M, [A, B, M]))             # M forks at number 1
Y = craft(w, M, [X1.id, X2.id, addB.id], 2, rotate_body(w, M, [A, B, M]))  # M, re-added, rotates

for op in (addA, addB, X1, X2, Y):
    recv(w.replicas[A], op)
stA = w.replicas[A].state
print("A's merged view: M member?", w.id(M) in stA.members, "| M equivocator?", w.id(M) in stA.equivocators,
      "| Y skipped:", stA.skipped.get(Y.id))
Z = w.act(A, "rotate")                                                   # honest, wrapped for A, B, M
R = w.replicas[R_]
# R first gets an op of B's that A has not seen (so what comes next is not on R's heads).
P = craft(w, B, [addB.id], sB + 2, policy_body("forward"))
for op in (addA, addB, P, X1, X2, Y, Z):
    recv(R, op)
print("Z validity at A:", w.replicas[A].log.validity[Z.id])
print("Z validity at R:", R.log.validity[Z.id])
w.converge(duplicates=False)
sums = w.summaries()
print("replicas agree:", all(s == sums[0] for s in sums), "| current epochs:", sorted({s['epoch'][:10] for s in sums}))
if "-v" in sys.argv:
    lg = w.replicas[A].log
    for op in lg.order:
        print(" ", op, op.author.hex()[:6], lg.state.skipped.get(op.id), lg.validity[op.id])
    print("  members:", sorted(d.hex()[:6] for d in lg.state.members), "M =", w.id(M).hex()[:6], "B =", w.id(B).hex()[:6])
