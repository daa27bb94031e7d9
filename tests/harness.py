"""A multi-replica harness for the group core.

`World(n)` makes n devices; device 0 founds a group, the others start as empty
replicas of it. Tests then let devices act (`act`), move ops between
replicas in a controlled order (`deliver`, `sync`), and finally deliver
everything everywhere (`converge`) to compare what each replica concluded.

Everything is deterministic given the seeds, so a failing hypothesis example
replays exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from covey.core import escrow
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.membership import GroupState
from covey.core.ops import History, Op
from covey.errors import CoveyError, UsageError
from covey.sim.dealing import seeded_dealer
from tests.conftest import NOW, SeededRng

ACTIONS = (
    "add",
    "add_admin",
    "remove",
    "leave",
    "promote",
    "demote",
    "rotate",
    "policy",
    "heal",
    "relay_add",
    "relay_move",
    "relay_remove",
    "inbox",
    "person",
    "deal",
)
#: Actions about the group's relays; their `j` picks one of RELAYS.
RELAY_ACTIONS = ("relay_add", "relay_move", "relay_remove", "inbox")
#: The relays scripts name: (key, access), made up (nothing is dialed).
RELAYS = tuple(
    (hashlib.blake2b(f"relay-{r}".encode(), digest_size=32).digest(), bytes([r]) * 32)
    for r in range(3)
)
#: The people `person` actions place devices in (made-up group-scoped IDs).
PEOPLE = (b"p" * 16, b"q" * 16)
#: The same, weighted towards changes that grow the group, so that random
#: scripts build groups big enough to conflict in interesting ways.
WEIGHTED_ACTIONS = (*ACTIONS, "add", "add", "add", "add_admin", "rotate", "heal", "promote")


def summary(state: GroupState) -> dict[str, Any]:
    """Everything a replica concluded, in a comparable form."""
    return {
        "members": {d.hex(): m.role for d, m in sorted(state.members.items())},
        "epoch": state.current_epoch.id.hex(),
        "epochs": [e.id.hex() for e in state.epochs],
        "applied": [a.hex() for a in state.applied],
        "skipped": {k.hex(): v for k, v in sorted(state.skipped.items())},
        "history": state.history,
        "equivocators": sorted(d.hex() for d in state.equivocators),
        "notices": list(state.notices),
        "needs_healing": state.needs_healing,
        "relays": {k.hex(): (r.host, r.port, r.access.hex()) for k, r in state.relays.items()},
        "inboxes": {f"{d.hex()}@{r.hex()}": b.hex() for (d, r), b in sorted(state.inboxes.items())},
        "dealing": None if state.dealing is None else (state.dealing.id.hex(), state.dealing.void),
        "people": {
            p.hex(): (state.person_name(p), [d.hex() for d in devices])
            for p, devices in state.people.items()
        },
    }


@dataclass
class World:
    n: int
    history: History = "shared"
    seed: str = "world"
    identities: list[Identity] = field(init=False)
    replicas: list[Group] = field(init=False)
    #: Every op any device wrote, in the order written.
    written: list[Op] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.rng = SeededRng(self.seed)
        self.clock = NOW
        self.identities = [
            create_identity(f"device-{i}", NOW, SeededRng(f"{self.seed}-{i}"))
            for i in range(self.n)
        ]
        founder = Group.create(self.identities[0], "family", self.history, NOW, self.rng)
        self.written.append(founder.log.order[0])
        self.replicas = [founder] + [Group.replica(me, founder.id) for me in self.identities[1:]]

    def id(self, i: int) -> bytes:
        return self.identities[i].device_id.raw

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def act(self, i: int, action: str, j: int = 0) -> Op | None:
        """Device i tries `action` (on device j); None if the rules refuse it."""
        group = self.replicas[i]
        if group.log.state is None:
            return None
        try:
            if action == "add":
                op = group.add(self.identities[j].record_bytes, "member", self.tick(), self.rng)
            elif action == "add_admin":
                op = group.add(self.identities[j].record_bytes, "admin", self.tick(), self.rng)
            elif action == "remove":
                op = group.remove(self.id(j), self.tick(), self.rng)
            elif action == "leave":
                op = group.remove(self.id(i), self.tick(), self.rng)
            elif action == "promote":
                op = group.set_role(self.id(j), "admin", self.tick())
            elif action == "demote":
                op = group.set_role(self.id(j), "member", self.tick())
            elif action == "rotate":
                op = group.rotate(self.tick(), self.rng)
            elif action == "policy":
                op = group.set_policy(
                    "forward" if group.state.history == "shared" else "shared", self.tick()
                )
            elif action in ("relay_add", "relay_move"):
                key, access = RELAYS[j % len(RELAYS)]
                port = 4443 if action == "relay_add" else 5000 + self.clock % 7
                op = group.add_relay(
                    key, f"relay-{j % len(RELAYS)}.test", port, access, self.tick()
                )
            elif action == "relay_remove":
                op = group.remove_relay(RELAYS[j % len(RELAYS)][0], self.tick())
            elif action == "inbox":
                relay = RELAYS[j % len(RELAYS)][0]
                box = hashlib.blake2b(b"%d-%d" % (i, self.clock), digest_size=32).digest()
                op = group.set_inbox(relay, box, self.tick())
            elif action == "person":
                # One of two people, named by the clock: concurrent moves and
                # renames of a person both happen in random scripts.
                person = PEOPLE[(i + j + self.clock) % len(PEOPLE)]
                op = group.set_person(self.id(j), person, f"person-{self.clock % 3}", self.tick())
            elif action == "deal":
                # Every person holds a share, with one paper share when there is
                # one person only (K = 2); every random byte from the world's seed.
                people = len(group.state.people)
                planned = escrow.plan(group.state, 2, 1 if people < 2 else 0, 3600)
                dealt = seeded_dealer(SeededRng(f"{self.seed}-deal-{self.clock}"))(2, planned.count)
                body, _ = escrow.deal_body(
                    group.id, self.identities[i], dealt, planned, self.tick(), self.rng
                )
                op = group.deal(body, self.tick())
            elif action == "heal":
                healed = group.heal(self.tick(), self.rng)
                if healed is None:
                    return None
                op = healed
            else:
                raise ValueError(action)
        except UsageError:
            return None
        self.written.append(op)
        return op

    def act_somehow(self, i: int, action: str, j: int) -> Op | None:
        """Like `act`, but i and j pick among the devices for which it can work.

        i picks among devices that are members in their own view; j among
        the devices the action could target in that view. Random scripts
        then spend their steps on changes, not on refusals.
        """
        actors = [k for k in range(self.n) if self._member_in_own_view(k)]
        if not actors:
            return None
        actor = actors[i % len(actors)]
        state = self.replicas[actor].state
        members = [k for k in range(self.n) if self.id(k) in state.members]
        if action in RELAY_ACTIONS:
            return self.act(actor, action, j)
        if action in ("add", "add_admin"):
            candidates = [k for k in range(self.n) if k not in members]
        else:
            candidates = members
        target = candidates[j % len(candidates)] if candidates else actor
        return self.act(actor, action, target)

    def _member_in_own_view(self, k: int) -> bool:
        state = self.replicas[k].log.state
        return state is not None and self.id(k) in state.members

    def deliver(self, ops: Iterable[Op | bytes], j: int) -> None:
        for op in ops:
            data = op if isinstance(op, bytes) else op.raw
            with contextlib.suppress(CoveyError):  # refused: tested elsewhere
                self.replicas[j].receive(data)

    def sync(self, i: int, j: int) -> None:
        """j receives everything i holds, oldest first."""
        self.deliver([op.raw for op in self.replicas[i].log.order], j)

    def converge(self, shuffle_seed: int = 0, duplicates: bool = True) -> None:
        """Every replica receives every op, in its own shuffled order."""
        shuffler = random.Random(shuffle_seed)
        everything = [op.raw for op in self.written]
        for j in range(self.n):
            batch = everything + (everything[: len(everything) // 2] if duplicates else [])
            shuffler.shuffle(batch)
            self.deliver(batch, j)

    def summaries(self) -> list[dict[str, Any]]:
        return [summary(group.state) for group in self.replicas if group.log.state is not None]
