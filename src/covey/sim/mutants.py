"""Planted faults: one deliberate bug at a time, to prove the invariants bite.

Each mutant is a context manager that swaps one piece of covey for a broken
one while a simulation runs, and puts it back after. They live here, in the
simulator, and nothing in `covey` itself imports this module: no command can
reach them.

* `no-rotate-on-remove`: a removal re-wraps the current key for the
  remaining members instead of drawing a fresh one (the removed device keeps
  a key that is still in use). Caught by `secrecy`.
* `send-before-persist`: the driver carries out sends before the store
  commits (a crash in between loses an op a peer already holds). Caught by
  `durability` (and, once the author reuses a sequence number,
  `no-honest-equivocation`).
* `accept-unauthorized`: the rule table lets any member add devices.
  Caught by `integrity`, whose table is an independent copy.
* `merge-by-arrival`: concurrent ops are ordered by arrival instead of by
  op ID, so replicas that received them in different orders disagree.
  Caught by `convergence`.
* `one-witness`: a claim completes with a witness of one person where the
  rule asks two (PROTOCOL.md 19.5). Caught by `witnessed`, which counts the
  witnesses in the completion's causal past itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from covey.core import crypto, keys, membership
from covey.core.group import Group
from covey.core.log import GroupLog
from covey.core.ops import Op, Remove, Rotation
from covey.errors import NotAllowed


def _remove_reusing_the_key(self: Group, device: bytes, now: int, rng: Any) -> Op:
    if device not in self.state.members:
        raise NotAllowed("that device is not a member")
    key = self.keys[self.state.current_epoch.id]
    recipients = {d: m.record.box_key for d, m in self.state.members.items() if d != device}
    wraps = tuple(
        (d, crypto.box_wrap(self.me.secrets.box_secret, recipients[d], key, rng))
        for d in sorted(recipients)
    )
    links = self._links(key, frozenset(recipients), None, rng)
    op = self._author(Remove(device, Rotation.of(keys.commitment(key), wraps), links), now)
    self.keys[op.id] = key
    return op


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextlib.contextmanager
def _any_member_adds() -> Iterator[None]:
    rules: dict[str, membership.Rule] = membership.RULES  # type: ignore[assignment]
    saved = rules["add"]
    rules["add"] = membership.Rule("add", "member", True, saved.does)
    try:
        yield
    finally:
        rules["add"] = saved


def _arrival_order(self: GroupLog, ops: list[Op]) -> list[Op]:
    # Integration order is causal, but not the same on every replica.
    arrival = {op_id: i for i, op_id in enumerate(self.ops)}
    return sorted(ops, key=lambda op: arrival[op.id])


MUTANTS: Final = {
    "no-rotate-on-remove": "a removal keeps the current key instead of drawing a fresh one",
    "send-before-persist": "the driver sends before the store commits",
    "accept-unauthorized": "the rule table lets any member add devices",
    "merge-by-arrival": "concurrent ops are merged in arrival order",
    "one-witness": "a claim completes with witnesses of one person, not two",
}


def _one_witness(state: membership.GroupState, claim: membership.ClaimState) -> int:
    return 1


@contextlib.contextmanager
def planted(name: str | None) -> Iterator[None]:
    """Run the block with mutant `name` in place (None: covey as it is)."""
    if name is None or name == "send-before-persist":  # the world applies that one
        yield
    elif name == "no-rotate-on-remove":
        with _patched(Group, "remove", _remove_reusing_the_key):
            yield
    elif name == "accept-unauthorized":
        with _any_member_adds():
            yield
    elif name == "one-witness":
        with _patched(membership, "witnesses_needed", _one_witness):
            yield
    elif name == "merge-by-arrival":
        with _patched(GroupLog, "_kahn", _arrival_order):
            yield
    else:
        raise KeyError(name)
