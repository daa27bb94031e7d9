"""Finding: the outsider cap (MAX_OPS_AFTER_REMOVAL = 16) is bypassed by skipping sequence numbers.

A removed device M that knows it was removed writes, on top of its removal, a chain of ops each
numbered far above the last (invalid: SEQ_REASON). _outsider_run is only computed for ops whose
reason is NOT_A_MEMBER, so these count nothing: every replica keeps all of them, forever.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403

w = World(3, seed="seqskip")
A, B, M = 0, 1, 2
w.act(A, "add_admin", B); w.act(A, "add", M)
w.sync(A, B); w.sync(A, M)
rm = w.act(A, "remove", M)
w.sync(A, M); w.sync(A, B)

N = 2000
parent = [rm.id]
s = w.replicas[M].log.latest.get(w.id(M), 0)
ops = []
for k in range(N):
    op = craft(w, M, parent, s + 2 + 2 * k, policy_body("forward"))  # always skips one number
    ops.append(op); parent = [op.id]
g = w.replicas[B]
before = len(g.log)
res = [recv(g, op) for op in ops]
print("outcomes:", {r: res.count(r) for r in set(res)})
print(f"ops held by B: {before} -> {len(g.log)}  (cap claims at most 16 after removal)")
# same with a variant: the same number again and again (each a new 'fork', also SEQ_REASON)
parent2 = [rm.id]; ops2 = []
for k in range(200):
    op = craft(w, M, parent2, s + 5, policy_body("shared"), t=5000 + k)
    ops2.append(op); parent2 = [op.id]
res2 = [recv(g, op) for op in ops2]
print("same-number chain outcomes:", {r: res2.count(r) for r in set(res2)}, "held:", len(g.log))
