"""Finding: OutsiderLimit raised inside _release_pending escapes receive().

A removed device M (that knows it was removed) sends its 16 allowed outsider ops, then several
forks at number 17 (they wait for #16), then #16. Integrating #16 frees the forks; the first one
raises OutsiderLimit out of _release_pending, so:
  * receive(#16) raises although #16 *was* integrated;
  * the other forks stay in `pending` with every parent present ("landmines");
  * the next honest op integrated also raises (a landmine goes off in its release wave), so
    Group.receive never learns the epoch key that op wraps for this device -- lost for good;
  * a store that saved the pending landmines cannot be loaded (StoreCorrupt path).
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from covey.core.group import Group
from covey.errors import InvalidInput

w = World(4, seed="landmine")
A, B, M = 0, 1, 2
w.act(A, "add_admin", B); w.act(A, "add", M)
w.sync(A, B); w.sync(A, M)
rm = w.act(A, "remove", M)
w.sync(A, M); w.sync(A, B)
assert w.id(M) not in w.replicas[M].state.members

s = w.replicas[M].log.latest.get(w.id(M), 0)
parent = [rm.id]
outs = []
for k in range(1, 17):
    op = craft(w, M, parent, s + k, policy_body("forward" if k % 2 else "shared"))
    outs.append(op); parent = [op.id]
mines = [craft(w, M, parent, s + 17, policy_body("forward"), t=1000 + i) for i in range(4)]

g = w.replicas[B]
for op in outs[:-1]:
    print("outsider op", recv(g, op)) if op is outs[0] else recv(g, op)
for op in mines:
    recv(g, op)
print("pending before #16:", len(g.log.pending))
print("receive(#16):", recv(g, outs[-1]), "| #16 in log:", outs[-1].id in g.log)
ready = [p for p in g.log.pending.values() if all(q in g.log.ops for q in p.parents)]
print("pending ops with every parent present:", len(ready))

# An honest rotation by A, wrapped for B, arrives now.
H = w.act(A, "rotate")
try:
    g.receive(H.raw)
    print("honest rotation received fine")
except InvalidInput as exc:
    print("receive(honest rotation) raised:", type(exc).__name__, exc)
print("H integrated at B:", H.id in g.log, "| B holds H's epoch key:", H.id in g.keys,
      "| B's current epoch is H:", g.state.current_epoch.id == H.id)
try:
    g.current_key(); print("B can seal")
except Exception as exc:
    print("B current_key():", type(exc).__name__)

# Restart: what a store would hold (ops in arrival order, the pending ops).
raws = [op.raw for op in g.log.ops.values()]
pending = [op.raw for op in g.log.pending.values()]
print("landmines still pending:", len(pending))
try:
    r = Group.restore(g.me, g.id, raws, pending, dict(g.keys))
    print("restore ok; ops", len(r.log), "stored", len(raws),
          "-> StoreCorrupt (len mismatch)" if len(r.log) != len(raws) else "")
except InvalidInput as exc:
    print("Group.restore raised", type(exc).__name__, "-> load_group raises StoreCorrupt:", exc)
