"""Consequence of the cached-branch/self-fork bug: a replica refuses an honest member forever.

Same trick as repro_selffork_branch.py, but the honest op on top of the self-fork is admin B
adding E. On replica A (which judged it against the stale cached branch, where the forker M is
still a member) the add is invalid, so E is never introduced there: every op E signs is refused
by A as UnknownDevice, and every later honest op (which descends from E's) waits at A forever.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403

w = World(6, seed="selffork2")
A, B, C, M, E = 0, 1, 2, 3, 4
w.act(A, "add_admin", B); w.act(A, "add", C); w.act(A, "add", M)
for j in range(1, 4):
    w.sync(A, j)
members = [A, B, C, M]
Q = w.act(A, "rotate")                       # A's own concurrent op (not sent yet)
heads = sorted(w.replicas[B].log.heads)
s = w.replicas[B].log.latest.get(w.id(M), 0)
X = craft(w, M, heads, s + 2, rotate_body(w, M, members))
Y = craft(w, M, [X.id], s + 1, rotate_body(w, M, members))
Z = craft(w, M, [Y.id], s + 2, rotate_body(w, M, members))
for op in (X, Y, Z):
    recv(w.replicas[B], op)
W = w.act(B, "add", E)                       # honest admin B adds E (B's view: M is gone)
w.sync(B, E)
e1 = w.act(E, "rotate")                      # the new member E writes
w.deliver([e1], B)
b2 = w.act(B, "rotate")                      # and B goes on, on top of it
for op in (X, Y, Z, W, e1, b2):
    print(f"A receives {op!r}: {recv(w.replicas[A], op)}")
print("validity of B's add of E at A:", w.replicas[A].log.validity[W.id], "| at C:", (w.sync(B, C), w.replicas[C].log.validity[W.id])[1])
print("A: E member?", w.id(E) in w.replicas[A].state.members, "| pending at A:", len(w.replicas[A].log.pending),
      "| A holds", len(w.replicas[A].log), "ops, B holds", len(w.replicas[B].log))
w.converge()
print("after converge: A holds", len(w.replicas[A].log), "ops, B holds", len(w.replicas[B].log), "| A pending:", len(w.replicas[A].log.pending))
