"""The _changed_from `break` bug with a visible effect: the history policy differs.

As repro_changed_from_break.py, plus T (promoted by gB) sets the history policy to `forward`
(Top, after gB). When r2 arrives and defeats r, the replay resumes after gB: gB stays vetoed in
the restored state, so Top is skipped ("not an admin here"). full_replay applies gB and Top.
Replica R (that saw r first) says history=shared; a replica that got everything at once says
forward (newcomers get old epoch keys on one, not on the other).
Args: CHECKPOINT_EVERY (default 1), PAD (ops before the scenario; with 512 use ~600 and the
grind below places gC, r far after gB).
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from covey.core import log as L

L.CHECKPOINT_EVERY = int(sys.argv[1]) if len(sys.argv) > 1 else 1
TAIL = int(sys.argv[2]) if len(sys.argv) > 2 else 0   # B's ops between gB and r2


def grind(make, pred):
    for t in range(10**6):
        op = make(t)
        if pred(op):
            return op
        w.written.pop()


w = World(6, seed="brk2")
A, B, C, T, R_, S_ = 0, 1, 2, 3, 4, 5
w.act(A, "add_admin", B); w.act(A, "add_admin", C); w.act(A, "add", T)
for j in (B, C, T, R_, S_):
    w.sync(A, j)
H = sorted(w.replicas[A].log.heads)
lat = w.replicas[A].log.latest
sA, sB, sC = lat[w.id(A)], lat.get(w.id(B), 0), lat.get(w.id(C), 0)
big = (lambda op: op.id[:2] == b"\xff\xff") if TAIL else (lambda op: op.id[0] == 0xFF)
r = grind(lambda t: craft(w, A, H, sA + 1, remove_body(w, A, T, [A, B, C]), t=t), big)
gC = grind(lambda t: craft(w, C, H, sC + 1, SetRole(w.id(T), "admin"), t=t), big)
gB = grind(lambda t: craft(w, B, H, sB + 1, SetRole(w.id(T), "admin"), t=t),
           lambda op: op.id < r.id and op.id < gC.id)
Top = grind(lambda t: craft(w, T, [gB.id], 1, policy_body("forward"), t=t),
           lambda op: op.id < gC.id and op.id < r.id and (not TAIL or op.id[:2] == b"\xff\xff"))
tail, parent = [], [(Top if not TAIL else gB).id]
for k in range(TAIL):
    op = craft(w, B, parent, sB + 2 + k, policy_body("shared" if k % 2 else "forward")); tail.append(op); parent = [op.id]
r2 = craft(w, B, parent, sB + 2 + TAIL, remove_body(w, B, A, [B, C, T]))

R = w.replicas[R_]
for op in (r, gC, gB, Top, *tail):
    recv(R, op)
_ = R.state                       # settled: r in force, gB/gC vetoed, Top skipped
recv(R, r2)
S = w.replicas[S_]
for op in (r, gC, gB, Top, *tail, r2):
    recv(S, op)
print("positions: gB", R.log._position[gB.id], "Top", R.log._position[Top.id], "gC", R.log._position[gC.id], "r", R.log._position[r.id])
for name, g in (("R (saw r first)", R), ("S (all at once)", S)):
    st = g.state
    print(f"{name}: history={st.history}, Top skipped: {st.skipped.get(Top.id)!r}, gB skipped: {st.skipped.get(gB.id)!r}")
print("R incremental == R full_replay:", summary(R.state) == summary(R.log.full_replay()))
print("R == S:", summary(R.state) == summary(S.state))
