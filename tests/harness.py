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

from covey.core import escrow, shares
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.membership import GroupState
from covey.core.ops import History, Op, request_id
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
    "approve",
    "claim",
    "recover",
    "witness",
    "veto",
    "complete",
)
#: Recovery actions whose `j` is a device that asks (a non-member, as the actor sees it).
ASKING_ACTIONS = ("approve", "claim", "recover")
#: Recovery actions whose `j` picks one of the claims the actor holds.
CLAIM_ACTIONS = ("witness", "veto", "complete")
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
        "claims": {
            c.hex(): (claim.status, claim.role, sorted(p.hex() for p in claim.witnesses))
            for c, claim in sorted(state.claims.items())
        },
        "approvals": {
            f"{d.hex()}/{r.hex()}": {p.hex(): a.hex() for p, a in sorted(by.items())}
            for (d, r), by in sorted(state.approvals.items())
        },
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
        #: Each dealing's paper shares (dealing op ID -> shares), for `recover`.
        self.paper: dict[bytes, list[shares.Share]] = {}
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
                # Every person holds a share, and one paper share (K = 2: a
                # recovery needs one release and the paper); every random byte
                # from the world's seed.
                planned = escrow.plan(group.state, 2, 1, 3600)
                dealt = seeded_dealer(SeededRng(f"{self.seed}-deal-{self.clock}"))(2, planned.count)
                body, paper = escrow.deal_body(group.id, dealt, planned, self.tick(), self.rng)
                op = group.deal(body, self.tick())
                self.paper[op.id] = paper
            elif action in ASKING_ACTIONS or action in CLAIM_ACTIONS:
                found = self._recovery(i, group, action, j)
                if found is None:
                    return None
                op = found
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

    def _recovery(self, i: int, group: Group, action: str, j: int) -> Op | None:
        """Device i takes part in an admission or a recovery of device j (PROTOCOL.md 19).

        Approvals alternate between admitting j and recovering the person of
        the actor's first other member (`_person_for`); a `recover` combines
        the released shares and the paper into the recovery record's claim,
        written on j's replica (j need not be a member). The claim actions
        take the `j`-th claim the actor holds.
        """
        state = group.state
        dealing = state.dealing
        if action in CLAIM_ACTIONS:
            claims = sorted(c for c, claim in state.claims.items() if claim.status == "pending")
            if not claims:
                return None
            claim = claims[j % len(claims)]
            if action == "witness":
                return group.witness(claim, self.tick())
            if action == "veto":
                return group.veto(claim, self.tick())
            return group.complete(claim, self.tick(), self.rng)
        if dealing is None:
            return None
        record = self.identities[j].record_bytes
        person = self._person_for(state, i, j)
        kind = "admit" if person is None else "recover"
        request = request_id(record, kind, person)
        if action == "approve":
            return group.approve(request, kind, person, self.tick())  # type: ignore[arg-type]
        approvals = state.approvals.get((dealing.id, request), {})
        if action == "claim":
            return group.claim_admission(
                self.identities[j].record_bytes, approvals.values(), self.tick()
            )
        if person is None:
            return None
        # The requester (j) takes the releases and the paper, and combines.
        released = []
        for approval in approvals.values():
            author = next(
                (k for k in range(self.n) if self.id(k) == group.log.ops[approval].author), None
            )
            if author is None or self.replicas[author].log.state is None:
                continue
            try:
                released.append(escrow.open_share(group.state, dealing, self.identities[author]))
            except CoveyError:
                continue
        paper = self.paper.get(dealing.id, [])
        picked = (released + paper)[: dealing.deal.threshold]
        try:
            secret = shares.combine(
                picked,
                nonce=dealing.deal.nonce,
                digests={slot.index: slot.digest for slot in dealing.deal.slots},
                threshold=dealing.deal.threshold,
            )
        except CoveyError:
            return None
        recovery = escrow.recovery_identity(secret, dealing.deal.nonce, dealing.deal.record.created)
        requester = self.replicas[j]
        self.deliver([op.raw for op in group.log.order], j)
        used = [a for a in approvals.values() if a in requester.log.ops]
        paper_used = [s.member_index for s in picked if s in paper]
        return requester.claim_recovery(recovery, record, person, used, paper_used, self.tick())

    def _person_for(self, state: GroupState, i: int, j: int) -> bytes | None:
        """None (an admission) for even j, else the person of a member other than i."""
        if j % 2 == 0:
            return None
        others = [d for d in state.by_seniority() if d != self.id(i)]
        return state.person(others[0]) if others else None

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
        if action in ("add", "add_admin") or action in ASKING_ACTIONS:
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
