"""Findings on the pending buffer (5f) and restore.

1. Junk signed by any device whose key the log knows (a member, or a device removed long ago)
   with parents that never come is "checked", so never evicted, and never expires: one sender
   pins MAX_PENDING_PER_SENDER (2,500) places forever, and they are saved with the store.
2. Restore re-buffers every saved pending op as sender None: (a) with more than 2,500 saved
   pending ops in all (e.g. the junk plus ONE out-of-order op from an honest peer) the 2,501st
   raises BufferFull, so Group.restore fails and the store's load_group says StoreCorrupt;
   (b) otherwise the junk now counts against None and the attacker gets a fresh 2,500 quota.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from covey.core.group import Group
from covey.core import log as L
from covey.errors import InvalidInput

w = World(4, seed="pend")
A, B, M, H = 0, 1, 2, 3
w.act(A, "add_admin", B); w.act(A, "add", M)
w.sync(A, B); w.sync(A, M)
w.act(A, "remove", M)                         # M is removed; its key stays known to every log
w.sync(A, B)
g = w.replicas[B]


def junk(count, base):
    out = []
    for k in range(count):
        fake_parent = (base + k).to_bytes(32, "big")
        op = craft(w, M, [fake_parent], 5, policy_body("forward"), t=base + k)
        w.written.pop()
        out.append(op.raw)
    return out

res = g.receive_all(junk(L.MAX_PENDING_PER_SENDER, 10**6), sender=w.id(M))
print("M's junk buffered:", sum(1 for r in res if not isinstance(r, Exception)), "| pending:", len(g.log.pending))
print("checked (unevictable):", sum(1 for i in g.log.pending if g.log._pending_from[i][1]))

# An honest peer H delivers one op out of order (its parent comes in the next message).
a1 = w.act(A, "rotate"); a2 = w.act(A, "rotate")
print("honest out-of-order op from another peer:", g.receive(a2.raw, sender=w.id(A)).outcome, "| pending:", len(g.log.pending))

# The node saves (ops + pending) and restarts before a1 arrives.
arrival = [op.raw for op in g.log.ops.values()]
pend = [op.raw for op in g.log.pending.values()]
try:
    r = Group.restore(g.me, g.id, arrival, pend, dict(g.keys))
    print("restore ok")
except InvalidInput as exc:
    print("Group.restore raised", type(exc).__name__, f"({exc}) -> Store.load_group: StoreCorrupt")

# (b) with fewer saved pending ops the restore works, but the junk changes owner
g2 = Group.replica(w.identities[B], g.id, [op.raw for op in w.replicas[B].log.order])
g2.receive_all(junk(2000, 2 * 10**6), sender=w.id(M))
r = Group.restore(g2.me, g2.id, [op.raw for op in g2.log.ops.values()], [op.raw for op in g2.log.pending.values()], {})
print("after restore, pending per sender:", {('None' if k is None else 'M'): v for k, v in r.log._pending_count.items()})
res = r.receive_all(junk(2500, 3 * 10**6), sender=w.id(M))
print("M may now buffer", sum(1 for x in res if not isinstance(x, Exception)), "more; pending", len(r.log.pending))
