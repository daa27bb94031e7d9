"""H1: `Group.bad_links` is not persisted; after a store reload a junk link counts as a link.

PROTOCOL 7 / 8.1: "A link that does not open, for a member holding the key it
is sealed under, counts as linking nothing there (Group.bad_links), so a junk
link never closes a gap for the members that can check it." The store keeps
ops and keys only; `Group.restore` starts with an empty `bad_links` and never
re-opens the links of keys it already holds. After a restart the junk-linked
epoch is no longer a top: the honest founder no longer links it, a newcomer
added afterwards (under `shared`) never gets that epoch, and no replica that
restarted sees a gap to heal.
"""
import tempfile
from pathlib import Path

import history_common  # noqa: F401
from history_common import NOW, Link, SeededRng, World, heal_all, keys

import anyio

from covey.store.sqlite import Store

A, M, N = 0, 1, 2
world = World(3, seed="h1")
world.act(A, "add_admin", M)
world.sync(A, M)
world.act(A, "rotate")  # epoch P, held by A and M
world.sync(A, M)
founder = world.replicas[A]
P = founder.state.current_epoch.id

# M (a malicious member) rotates with a junk link to P: opens, but holds a wrong key.
liar = world.replicas[M]
liar._links = lambda new_key, recipients, newcomer, rng: (
    Link(P, keys.seal_link(new_key, liar.id, P, rng(32), rng)),
)
world.act(M, "rotate")
world.sync(M, A)
assert any(e == P for (_, e) in founder.bad_links)
before = P in founder.history_tops()


async def restart(group):
    home = Path(tempfile.mkdtemp()) / "home"
    async with Store.open(home, create=True) as store:
        await store.create_identity(group.me, None, SeededRng("ring"))
        me, data_key = await store.open_identity(None)
        await store.create_group(group, data_key, SeededRng("save"))
        await store.save_group(group, data_key, SeededRng("save2"))
        return await store.load_group(group.id, me, data_key)


reloaded = anyio.run(restart, founder)
world.replicas[A] = reloaded  # the founder's daemon restarted
after = P in reloaded.history_tops()

world.act(A, "add", N)  # a newcomer under `shared`
world.converge()
heal_all(world)
newcomer = world.replicas[N]
print(f"founder sees P as a top: before restart {before}, after {after}; "
      f"bad_links after reload: {len(reloaded.bad_links)}")
print(f"newcomer holds P: {P in newcomer.keys}; newcomer's own gaps: "
      f"{[(e.hex()[:8], d.hex()[:8]) for e, d in newcomer.history_gaps()]}")
if P not in newcomer.keys:
    print("VULNERABLE: after a restart the junk link covers P again; a shared newcomer "
          "never gets epoch P and no holder sees a gap to heal")
else:
    print("OK: the junk link is still known bad after a reload; the newcomer got P")
