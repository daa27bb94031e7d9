"""Claim (b): a removed admin E keeps power through a device whose *seniority*
predates the remover's.  B removes E (r1) || E re-adds P as admin (g), and P
removes B (r2).  r1 vetoes g, so r1 attacks r2 through r2's support; r2 vetoes
r1: a cycle, settled by seniority, and P's seniority is its *first* add (an
old membership it has since lost), older than B's.  Variant 'promote': P is a
current senior member that E promotes instead of re-adding.
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))
from tests.harness import World

def run(variant):
    w = World(5, seed="senior-" + variant)
    A, P, B, E, O = range(5)
    w.act(A, "add", P)                       # P joins first: most senior after A
    w.sync(A, P)
    if variant == "readd":
        w.act(P, "leave")                    # P leaves (or is removed) long ago
        w.sync(P, A)
    w.act(A, "add_admin", B); w.act(A, "add_admin", E)
    for k in (B, E, P): w.sync(A, k)
    r1 = w.act(B, "remove", E)               # B removes E
    g = w.act(E, "add_admin" if variant == "readd" else "promote", P)  # concurrently
    assert r1 and g, (r1, g)
    w.sync(E, P)
    r2 = w.act(P, "remove", B)               # P (admin only through g) removes B
    assert r2
    w.converge(shuffle_seed=1)
    s = w.replicas[O].state
    names = {w.id(k): n for k, n in zip(range(5), "APBEO")}
    return sorted(names[d] + ":" + m.role for d, m in s.members.items()), s.skipped.get(g.id), s.skipped.get(r1.id)

bad = False
for v in ("fresh", "readd", "promote"):
    if v == "fresh":
        # control: P is a brand-new device
        w = World(5, seed="senior-fresh"); A, P, B, E, O = range(5)
        w.act(A, "add_admin", B); w.act(A, "add_admin", E)
        for k in (B, E): w.sync(A, k)
        r1 = w.act(B, "remove", E); g = w.act(E, "add_admin", P); w.sync(E, P)
        r2 = w.act(P, "remove", B); w.converge(shuffle_seed=1)
        s = w.replicas[O].state; names = {w.id(k): n for k, n in zip(range(5), "APBEO")}
        res = (sorted(names[d] + ":" + m.role for d, m in s.members.items()), s.skipped.get(g.id), s.skipped.get(r1.id))
    else:
        res = run(v)
    print(f"{v:8s} members={res[0]} E's grant skipped={res[1]!r} B's removal of E skipped={res[2]!r}")
    if v != "fresh" and "E:admin" in res[0]:
        bad = True
print("VULNERABLE: removed admin E keeps power" if bad else "OK")
