"""Outsider run (MAX_OPS_AFTER_REMOVAL) depends on arrival order -> permanent divergence.

_outsider_run(op) uses by_author_seq[(author, seq-1)] without checking that
that op is in op's causal past when it is the only one. A removed device M
writes 16 outsider ops c1..c16 (chain), and o2 numbered after c16 but on
parents [rm] (not containing c16: SEQ_REASON). A replica that gets o2 before
c16 keeps it (run 1); one that gets c16 first refuses it (run 17) and
refuses forever everything built on it -- including an honest admin's ops.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa
from covey.core.group import Group

w = World(5, seed="orun")
A, B, M, R1, R2 = range(5)
w.act(A, "add_admin", B); w.act(A, "add", M)
w.act(A, "add", R1); w.act(A, "add", R2)
for k in (B, M, R1, R2): w.sync(A, k)
rm = w.act(A, "remove", M)
for k in (B, M, R1, R2): w.sync(A, k)
s = w.replicas[M].log.latest.get(w.id(M), 0)
chain, parent = [], [rm.id]
for k in range(1, 17):
    op = craft(w, M, parent, s + k, policy_body("forward" if k % 2 else "shared"))
    chain.append(op); parent = [op.id]
o2 = craft(w, M, [rm.id], s + 17, policy_body("forward"))
# R1: o2 first, then the chain
print("R1 o2:", recv(w.replicas[R1], o2), [recv(w.replicas[R1], c) for c in chain][-1])
# R2: chain first, then o2
[recv(w.replicas[R2], c) for c in chain]
print("R2 o2:", recv(w.replicas[R2], o2))
# A (honest admin) hears from R1, and rotates on top of everything it holds
w.sync(R1, A)
h = w.act(A, "rotate")
print("A's honest rotation parents include o2:", o2.id in h.parents)
w.converge(shuffle_seed=3)
for k in range(5):
    g = w.replicas[k]
    print(k, "ops", len(g.log), "has o2", o2.id in g.log, "has A's rotation", h.id in g.log,
          "epoch", g.state.current_epoch.id.hex()[:12])
sets = {frozenset(w.replicas[k].log.ops) for k in range(5)}
print("VULNERABLE: replicas hold different op sets" if len(sets) > 1 else "OK")
