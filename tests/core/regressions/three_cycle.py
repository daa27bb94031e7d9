"""Finding: a 3-cycle of removals lets the removed admin win, although the founder is most senior.

A (founder), B, C are admins. Apart: A removes B; B removes C; C removes A.
PROTOCOL 6.2 step 3: in a cycle "the undecided revocation whose author is most senior takes
effect": A's. Then B's removal of C is vetoed (B's op, concurrent with B's removal), and C's removal
of A attacks an effective revocation, so it cannot take effect either.
Observed: _effective_revocations marks A's AND C's effective (C's only attacker, B's, was defeated;
that C's attacks A's, already effective, is ignored). The replay then skips A's (its author's
rights were revoked concurrently by C's), settle() excludes it, re-settles, and B's removal of C
takes effect: B (removed by the most senior admin) stays admin, C is out, A's removal is void.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403

w = World(4, seed="cycle3")
A, B, C = 0, 1, 2
w.act(A, "add_admin", B); w.act(A, "add_admin", C)
for j in (B, C):
    w.sync(A, j)
rA = w.act(A, "remove", B)
rB = w.act(B, "remove", C)
rC = w.act(C, "remove", A)
w.converge()
sums = w.summaries()
assert all(s == sums[0] for s in sums)
st = w.replicas[A].state
name = {w.id(k): "ABCD"[k] for k in range(4)}
print("members:", {name[d]: m.role for d, m in st.members.items()})
for label, op in (("A removes B", rA), ("B removes C", rB), ("C removes A", rC)):
    print(f"  {label}: {'in force' if op.id in st.in_force else 'skipped: ' + st.skipped.get(op.id, '?')}")
log = w.replicas[A].log
print("plan.excluded (revocations settled as if absent):", [name[log.ops[i].author] for i in log._plan.excluded])
