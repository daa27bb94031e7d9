"""(e) A removed adder G signs one op reusing the number of its old add of H
(SEQ_REASON: kept, never evidence).  From then on every op H writes makes each
replica walk the whole log (`_author_record`: the introduction's (author, seq)
has two ops -> `ancestors(op.parents)`), and every revocation whose support goes
through G's add does too (`_grants_before`).  O(n) per op -> O(n^2)."""
import sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa
from covey.core.group import Group
from covey.core import log as L

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
w = World(5, seed="twinanc")
A, G, H, O1, O2 = range(5)
w.act(A, "add_admin", G); w.sync(A, G)
g_add = w.act(G, "add_admin", H); w.sync(G, A); w.sync(A, H)
rm = w.act(A, "remove", G); w.sync(A, H)
twin = craft(w, G, [rm.id], g_add.seq, policy_body("forward"))   # reuses the number
hg = w.replicas[H]
ops = []
for i in range(N):
    ops.append(w.act(H, "rotate" if i % 50 else "demote" if i % 100 == 0 else "promote", A))
ops = [o for o in ops if o]
base = [op.raw for op in w.written if op not in ops and op is not twin]
calls = {"n": 0}
orig = L.GroupLog.ancestors
def counting(self, ids):
    calls["n"] += 1
    return orig(self, ids)
L.GroupLog.ancestors = counting
for name, extra in (("without twin", []), ("with twin", [twin.raw])):
    o = Group.replica(w.identities[O1], hg.id, base + extra)
    calls["n"] = 0
    t = time.time()
    for op in ops[: N // 2]:
        o.log.receive(op.raw)
    t1 = time.time()
    for op in ops[N // 2:]:
        o.log.receive(op.raw)
    t2 = time.time()
    print(f"{name:13s}: first {N//2} ops {t1-t:.2f} s, last {N - N//2} ops {t2-t1:.2f} s, "
          f"full-log ancestor walks {calls['n']}", flush=True)
