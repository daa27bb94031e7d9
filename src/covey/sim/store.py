"""An in-memory device store with the real store's transaction semantics.

`commit(persist, groups)` applies one `Persist` effect all at once, as the
SQLite store does in one transaction: ops, keys and bad history links of
the named groups that are not stored yet, when this device first held each
pending claim, new groups, erased keys, shredded groups, peers met. A crash
loses exactly what was not committed. `load(me)` rebuilds the groups the way
`Store.load_group` does: the stored ops replayed, the stored keys, bad links
and claim times added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from covey.core.group import Group
from covey.core.identity import Identity
from covey.core.node.io import Persist
from covey.core.ops import Op


@dataclass
class StoredGroup:
    ops: list[bytes] = field(default_factory=list)
    op_ids: set[bytes] = field(default_factory=set)
    keys: dict[bytes, bytes] = field(default_factory=dict)
    bad_links: set[tuple[bytes, bytes]] = field(default_factory=set)
    claims_held: dict[bytes, int] = field(default_factory=dict)


@dataclass
class MemoryStore:
    groups: dict[bytes, StoredGroup] = field(default_factory=dict)
    peers: dict[bytes, tuple[str, str, int]] = field(default_factory=dict)
    transactions: int = 0

    def commit(self, persist: Persist, live: Mapping[bytes, Group]) -> list[tuple[bytes, Op]]:
        """Apply one Persist; return (group ID, op) of each op newly stored."""
        self.transactions += 1
        new_ops: list[tuple[bytes, Op]] = []
        for group_id in (*persist.created, *persist.groups):
            group = live.get(group_id)
            if group is None:
                continue
            stored = self.groups.setdefault(group_id, StoredGroup())
            for op in group.log.order:
                if op.id not in stored.op_ids:
                    stored.op_ids.add(op.id)
                    stored.ops.append(op.raw)
                    new_ops.append((group_id, op))
            for epoch, key in group.keys.items():
                stored.keys.setdefault(epoch, key)
            stored.bad_links |= group.bad_links
            stored.claims_held = dict(group.claims_held)
        for group_id in persist.erased:
            if group_id in self.groups:
                self.groups[group_id].keys.clear()
        for group_id in persist.shredded:
            self.groups.pop(group_id, None)
        for peer in persist.peers:
            self.peers[peer.device] = (peer.name, peer.address, peer.time)
        return new_ops

    def load(self, me: Identity) -> list[Group]:
        groups = []
        for group_id, stored in self.groups.items():
            group = Group.replica(me, group_id, stored.ops)
            group.keys.update(stored.keys)
            group.recall_bad_links(stored.bad_links)
            group.claims_held = dict(stored.claims_held)
            group.saved_claims_held = dict(stored.claims_held)
            groups.append(group)
        return groups
