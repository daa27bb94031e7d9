"""One sender pins the whole pending byte budget (64 MiB) with 64 signed 1 MiB ops (a rotate
whose `hist` is 1 MiB of junk, parents that never come): signed by a known (even removed)
device, they are "checked", never evicted, never expire; every other peer's out-of-order op is
then refused with BufferFull."""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.core.regressions.craft import *  # noqa: F403
from covey.core.ops import Rotate, Rotation


def fat(size):
    """A rotation of about `size` bytes (made-up wraps: the ops never apply).
    (Adapted when history bundles became links: the reproducer padded `hist`.)"""
    count = max(1, size // 110)
    return Rotation.of(bytes(32), ((i.to_bytes(32, "big"), bytes(72)) for i in range(1, count + 1)))
from covey.core import log as L

w = World(4, seed="pbytes")
A, B, M = 0, 1, 2
w.act(A, "add_admin", B); w.act(A, "add", M)
w.sync(A, B); w.sync(A, M)
w.act(A, "remove", M); w.sync(A, B)
g = w.replicas[B]
rot = rotation_for(w, M, [A, B, M])
big = []
for k in range(64):
    op = craft(w, M, [(k + 1).to_bytes(32, "big")], 9, Rotate(fat(L.MAX_PENDING_BYTES // 64 - 2000), ()), t=k)
    w.written.pop(); big.append(op.raw)
res = g.receive_all(big, sender=w.id(M))
# one more junk op sized to leave less room than any op needs
room = L.MAX_PENDING_BYTES - g.log.pending_bytes
probe = craft(w, M, [(999).to_bytes(32, "big")], 9, Rotate(rot, ()), t=999); w.written.pop()
filler = craft(w, M, [(1000).to_bytes(32, "big")], 9, Rotate(fat(room - len(probe.raw) - 200), ()), t=1000); w.written.pop()
res.append(g.receive_all([filler.raw], sender=w.id(M))[0])
print("M's big junk buffered:", sum(1 for r in res if not isinstance(r, Exception)),
      "| pending bytes:", g.log.pending_bytes, "of", L.MAX_PENDING_BYTES)
a1 = w.act(A, "rotate"); a2 = w.act(A, "rotate")
print("honest peer A's out-of-order op:", end=" ")
try:
    print(g.receive(a2.raw, sender=w.id(A)).outcome)
except Exception as exc:
    print("->", type(exc).__name__, exc)
