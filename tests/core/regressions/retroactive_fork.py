"""Finding: a removed device rewrites history by forking at an old sequence number.

Equivocation evidence is the author's lowest forked number, and the device is treated as removed
at the first of the two ops in the order: every op of it from that number on is skipped, however
old. A device removed long ago (or whose key leaked after it left) signs one more op reusing an old
number: it is kept (invalid: its number does not follow), it is evidence, and
  * reusing number 2 voids its old add of B: B, and everything B did, vanish;
  * the founder reusing number 1 voids the genesis: no member, no epoch; state.current_epoch
    raises IndexError on every replica.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from craft import _rng

def scenario(seq):
    w = World(4, seed="retro")
    A, B, C = 0, 1, 2
    w.act(A, "add_admin", B)                 # A's op #2
    w.sync(A, B)
    w.act(B, "add", C)                       # B adds C
    w.act(B, "remove", A)                    # B removes the founder A
    for j in range(4):
        w.sync(B, j)
    for k in range(3):
        w.act(B, "rotate")
    w.sync(B, C); w.sync(B, A)
    st = w.replicas[C].state
    print(f"before: members {[idx(w, d) for d in st.members]}, admins {[idx(w, d) for d in st.admins]}, A member? {w.id(A) in st.members}")
    # A, removed (and knowing it), signs ONE op reusing an old number.
    evil = craft(w, A, sorted(w.replicas[A].log.heads), seq, policy_body("forward"))
    print("evil op outcome at C:", recv(w.replicas[C], evil), "| validity:", w.replicas[C].log.validity.get(evil.id))
    log = w.replicas[C].log
    st = log.state
    print(f"after : members {[idx(w, d) for d in st.members]}, equivocators {[idx(w, d) for d in st.equivocators]}, epochs {len(st.epochs)}")
    try:
        print("current epoch:", st.current_epoch.id.hex()[:12], "needs_healing:", st.needs_healing)
    except Exception as exc:
        print("state.current_epoch ->", type(exc).__name__, exc)
    try:
        w.replicas[C].rotate(w.tick(), _rng); print("C can still rotate")
    except Exception as exc:
        print("C.rotate ->", type(exc).__name__, exc)

print("== removed founder reuses number 2 (its add of B)"); scenario(2)
print("== removed founder reuses number 1 (the genesis)"); scenario(1)


print("== removed admin B reuses the number of its old removal of C: C comes back and gets keys")
w = World(4, seed="retro2")
A, B, C = 0, 1, 2
w.act(A, "add_admin", B); w.act(A, "add", C)
for j in (B, C):
    w.sync(A, j)
rmC = w.act(B, "remove", C)                  # B removes C (say C's device was lost)
w.sync(B, A)
w.act(A, "rotate")
w.act(A, "remove", B)                        # later, A removes B
w.sync(A, B)
st = w.replicas[A].state
print("before: members", [idx(w, d) for d in st.members])
evil = craft(w, B, sorted(w.replicas[B].log.heads), rmC.seq, policy_body("forward"))
print("B's one op:", recv(w.replicas[A], evil))
st = w.replicas[A].state
print("after : members", [idx(w, d) for d in st.members], "| needs_healing:", st.needs_healing,
      "| B's removal of C skipped:", st.skipped.get(rmC.id))
heal = w.replicas[A].heal(w.tick(), _rng)     # what `covey up` / `covey seal` does
if heal is None:  # (added when the finding was fixed: the reproducer assumed the bug)
    print("A heals: nothing to heal")
else:
    print("A heals: new epoch wrapped for", sorted(idx(w, d) for d in heal.body.rotation.recipients), "-> C (removed) gets the new key")
