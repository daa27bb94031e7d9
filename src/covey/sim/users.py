"""Simulated people: what they do with their devices, and when they are on.

Users act only through a node's commands, as the CLI does (create, invite
and join, rotate, remove, heal then seal; set recovery up, ask holders,
approve, veto), and only while the device is on. Uptime follows a profile
per device, drawn per day from the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal

from covey.core.node import io
from covey.core.seal import seal_bytes
from covey.errors import CoveyError
from covey.sim.invariants import Invariants, Sealed
from covey.sim.world import DAY, EPOCH, Device, Violation, World

HOUR: Final = 3600.0
#: Times a user tries to pair one device before giving up (hourly while the
#: devices are apart or off: two days).
PAIR_TRIES: Final = 48
#: On-hours per profile: (start hour, end hour) of an ordinary day.
PROFILES: Final = {
    "always": (0.0, 24.0),
    "day": (8.0, 22.0),
    "evening": (18.0, 23.5),
    "phone": (7.0, 23.0),
}


def schedule_uptime(world: World, device: Device, profile: str, start: float, end: float) -> None:
    """Turn the device on and off by its profile from `start` to `end` (virtual times)."""
    rand = world.rand
    if profile == "always":
        world.at(start, lambda: world.set_online(device, True))
        return
    on_hour, off_hour = PROFILES[profile]
    day = (start - EPOCH) // DAY
    while EPOCH + day * DAY < end:
        base = EPOCH + day * DAY
        on = max(start, base + (on_hour + rand.uniform(-1, 1)) * HOUR)
        off = min(end, base + min(24.0, off_hour + rand.uniform(-1, 0.5)) * HOUR)
        if on < off:
            world.at(on, lambda: world.set_online(device, True))
            if profile == "phone" and rand.chance(0.3):  # a flat battery, a flight
                gap = on + rand.uniform(1, 8) * HOUR
                world.at(gap, lambda: world.set_online(device, False))
                world.at(gap + rand.uniform(0.5, 3) * HOUR, lambda: world.set_online(device, True))
            world.at(off, lambda: world.set_online(device, False))
        day += 1


#: Seconds an asking device's code stays open before the user asks again.
ASK_LIFETIME: Final = 4 * 3600
#: Mean seconds between a holder's looks at whether the asking device is at hand
#: (a phone call: "are you home? approve my tablet").
APPROVE_EVERY: Final = 1800.0


@dataclass
class Asking:
    """A device asking holders to admit it (`person` None) or to recover a person."""

    device: Device
    person: str | None
    #: Persons (by name) whose holders may approve: the users who will.
    holders: dict[str, list[Device]]
    #: What the run must end with: "member" (completed), "refused" (vetoed, if
    #: claimed at all) or "any" (a measurement: nothing).
    expect: str
    asked_at: float = 0.0
    code: str | None = None
    #: Holder persons that approved (by the replies their users saw).
    approved: set[str] = field(default_factory=set)
    #: Holder persons whose approval is under way.
    busy: set[str] = field(default_factory=set)
    claimed_at: float | None = None
    claim: bytes | None = None
    group_id: bytes | None = None
    #: When the claim was completed in the merged log, and when the device
    #: first held the group's current key as a member.
    completed_at: float | None = None
    member_at: float | None = None
    vetoed_at: float | None = None
    codes: int = 0


@dataclass
class Users:
    """The people of a simulated world, and what their actions led to."""

    world: World
    invariants: Invariants
    group: str = "family"
    #: Set when the scenario's time is over (the heal phase): users do nothing more.
    done: bool = False
    #: Inviters go offline right after each pairing (the new device must get
    #: later keys from someone else).
    inviter_leaves: bool = False
    #: device name -> (joined at, group ID): devices waiting to hold the current key.
    waiting: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    #: Seconds from joining to holding the group's current key, per join.
    key_delays: list[float] = field(default_factory=list)
    #: Removals' new epochs: (group, epoch) -> (when, the members who hold its key yet).
    rotations: dict[tuple[bytes, bytes], tuple[float, set[str]]] = field(default_factory=dict)
    #: Seconds from a removal until a remaining member holds its new key, per member.
    removal_delays: list[float] = field(default_factory=list)
    joins: int = 0
    removals: int = 0
    notes: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    #: The paper shares' words of the latest dealing (`setup_recovery`).
    paper: list[str] = field(default_factory=list)
    #: The veto window of the latest dealing, in seconds.
    veto_window: float = 0.0
    #: Devices asking holders (`ask`), in order.
    askings: list[Asking] = field(default_factory=list)
    vetoes: int = 0

    def __post_init__(self) -> None:
        self.world.after_step.append(self._check_waiting)
        self.world.after_step.append(self._check_askings)

    def _at_hand(self, device: Device, other: Device) -> bool:
        return (
            self._on(device)
            and self._on(other)
            and self.world.network.reachable(device.index, other.index)
        )

    def _admins(self) -> list[Device]:
        """The devices that are admins of the group, as the union of all logs says."""
        for truth in self.invariants.truth.values():
            state = truth.state
            if state is not None and state.name == self.group:
                return [d for d in self.world.devices if state.role(d.id) == "admin"]
        return []

    def _leave_for_a_while(self, device: Device) -> None:
        """The inviter goes offline right after the pairing, for 1 to 6 hours."""
        if self.done:
            return
        world = self.world
        world.set_online(device, False)
        world.at(
            world.now + world.rand.uniform(1, 6) * HOUR, partial(world.set_online, device, True)
        )

    def _refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1
        self.world.trace(f"user: {why}")

    def _on(self, device: Device) -> bool:
        return device.node is not None

    def _holds_group(self, device: Device) -> bool:
        node = device.node
        return node is not None and any(
            g.log.state is not None and g.state.name == self.group for g in node.groups.values()
        )

    def create(self, device: Device, history: str = "shared", attempt: int = 1) -> None:
        """Create the group; a user whose device crashed before it said so tries again."""
        action = io.CreateGroup(self.group, "forward" if history == "forward" else "shared")
        if self.done:
            return

        def on_reply(reply: io.Reply) -> None:
            if reply.error == "Stopped" and attempt < 3 and not self._holds_group(device):
                self._refuse("create: Stopped")
                self.world.at(
                    self.world.now + 120, lambda: self.create(device, history, attempt + 1)
                )

        if not self.world.command(device, action, on_reply):
            self._refuse("create: device off")

    def pair(
        self,
        inviter: Device,
        joiner: Device,
        role: str = "member",
        then: Callable[[], None] | None = None,
        attempt: int = 1,
    ) -> None:
        """The inviter shows a code; a little later the joiner types it.

        A user whose join failed tries again a few minutes later (with a new
        code), up to `PAIR_TRIES` times in all: after a welcome lost on the
        way, the inviter already counts the joiner a member, and only a new
        pairing brings it the group. A retry asks another admin that is at
        hand when the first inviter is not (as a family would).
        """
        world = self.world
        if self.done and attempt == 1:
            return  # (in the heal phase users only finish what they started)
        if attempt > 1 and self._holds_group(joiner):
            return  # it got there meanwhile (a sync, or the user's earlier try)
        if attempt > 1 and not self._at_hand(inviter, joiner):
            inviter = next(
                (a for a in self._admins() if a is not joiner and self._at_hand(a, joiner)),
                inviter,
            )

        def again(delay: float) -> None:
            if attempt < PAIR_TRIES:
                world.at(
                    world.now + (min(delay, 300.0) if self.done else delay),
                    lambda: self.pair(inviter, joiner, role, then, attempt + 1),
                )

        if not (self._on(inviter) and self._on(joiner)):
            self._refuse("pair: a device is off")
            again(HOUR)
            return
        if not world.network.reachable(inviter.index, joiner.index):
            self._refuse("pair: not on one network")
            again(HOUR)
            return

        def on_join(reply: io.Reply) -> None:
            if reply.error is not None:
                self._refuse(f"join: {reply.error}")
                again(world.rand.uniform(120, 600))
            elif reply.data.get("event") == "joined":
                self.joins += 1
                self.waiting[joiner.name] = (world.now, bytes.fromhex(reply.data["group_id"]))

        def on_invite(reply: io.Reply) -> None:
            if reply.error is not None:
                self._refuse(f"invite: {reply.error}")
                return
            if reply.data.get("event") == "invitation":
                code = reply.data["code"]
                typing = world.rand.uniform(5, 30)

                def join() -> None:
                    if not world.command(joiner, io.Join(code=code, timeout=30), on_join):
                        self._refuse("join: device off")
                        again(HOUR)

                world.at(world.now + typing, join)
            elif reply.final:
                if self.inviter_leaves and reply.data.get("event") == "joined":
                    self._leave_for_a_while(inviter)
                if then is not None:
                    then()

        role_: Literal["admin", "member"] = "admin" if role == "admin" else "member"
        # Where devices say whose they are (`World.persons`), the inviter names the
        # joiner's person (`covey invite --person`): a second device of a person.
        person = joiner.person if world.persons else None
        if not world.command(inviter, io.Invite(self.group, role_, 600, person), on_invite):
            self._refuse("invite: device off")
            again(HOUR)

    def add_relay(self, device: Device, link: str) -> None:
        self._simple(device, io.AddRelay(self.group, link), "add relay")

    def rotate(self, device: Device) -> None:
        self._simple(device, io.Rotate(self.group), "rotate")

    def remove(self, admin: Device, target: Device) -> None:
        def done(reply: io.Reply) -> None:
            if reply.error is None:
                self.removals += 1
                group = bytes.fromhex(reply.data["group_id"])
                epoch = bytes.fromhex(reply.data["epoch"]["id"])
                self.rotations[(group, epoch)] = (self.world.now, {admin.name})

        self._simple(admin, io.RemoveDevice(self.group, target.id), "remove", done)

    def _simple(
        self,
        device: Device,
        action: io.Action,
        what: str,
        done: Callable[[io.Reply], None] | None = None,
    ) -> None:
        def on_reply(reply: io.Reply) -> None:
            if reply.error is not None:
                self._refuse(f"{what}: {reply.error}")
            elif done is not None:
                done(reply)

        if self.done:
            return
        if not self.world.command(device, action, on_reply):
            self._refuse(f"{what}: device off")

    def seal(self, device: Device) -> None:
        """Heal if needed (as `covey seal` does), then seal a note for the group."""

        def on_heal(reply: io.Reply) -> None:
            if reply.error is not None or device.node is None:
                self._refuse(f"seal: {reply.error}")
                return
            group = device.node.groups[bytes.fromhex(reply.data["group_id"])]
            try:
                epoch, _ = group.current_key()
            except CoveyError as exc:
                self._refuse(f"seal: {type(exc).__name__}")
                return
            self.notes += 1
            plaintext = f"note {self.notes} from {device.name}".encode()
            data = seal_bytes(group, plaintext, b"", device.rng)
            self.invariants.sealed.append(
                Sealed(group.id, epoch, device.name, data, plaintext, device.id)
            )
            self.world.trace(f"user: {device.name} sealed note {self.notes}")

        if self.done:
            return
        if not self.world.command(device, io.Heal(self.group), on_heal):
            self._refuse("seal: device off")

    def _check_waiting(self) -> None:
        self._check_rotations()
        for name, (since, group_id) in list(self.waiting.items()):
            truth = self.invariants.truth.get(group_id)
            device = next(d for d in self.world.devices if d.name == name)
            if truth is None or truth.state is None or device.node is None:
                continue
            group = device.node.groups.get(group_id)
            if group is not None and truth.state.current_epoch.id in group.keys:
                self.key_delays.append(self.world.now - since)
                del self.waiting[name]

    def _check_rotations(self) -> None:
        """Note when each remaining member first holds a removal's new key."""
        for (group_id, epoch), (since, holders) in self.rotations.items():
            truth = self.invariants.truth.get(group_id)
            if truth is None or truth.state is None:
                continue
            members = truth.state.members
            for device in self.world.devices:
                if device.name in holders or device.node is None or device.id not in members:
                    continue
                group = device.node.groups.get(group_id)
                if group is not None and epoch in group.keys:
                    holders.add(device.name)
                    self.removal_delays.append(self.world.now - since)

    def every(self, mean: float, start: float, end: float, action: Callable[[], None]) -> None:
        """Call `action` at random times (mean gap `mean` seconds) between start and end."""
        t = start + self.world.rand.exponential(mean)
        while t < end:
            self.world.at(t, action)
            t += self.world.rand.exponential(mean)

    # --- recovery: dealing, asking, approving, vetoing (PROTOCOL.md 19) ----------

    def setup_recovery(
        self, admin: Device, threshold: int, paper: int, veto: float, attempt: int = 1
    ) -> None:
        """The admin deals shares (`covey recovery setup`) and keeps the paper's words."""
        world = self.world

        def again() -> None:
            if attempt < PAIR_TRIES:
                world.at(
                    world.now + HOUR,
                    lambda: self.setup_recovery(admin, threshold, paper, veto, attempt + 1),
                )

        def on_reply(reply: io.Reply) -> None:
            if reply.error is not None:
                self._refuse(f"recovery setup: {reply.error}")
                again()
                return
            self.paper = [" ".join(s["words"]) for s in reply.data["paper_shares"]]
            self.veto_window = veto
            world.trace(f"user: {admin.name} dealt recovery shares, K={threshold}")

        action = io.SetupRecovery(self.group, threshold, paper, veto=int(veto))
        if not world.command(admin, action, on_reply):
            self._refuse("recovery setup: device off")
            again()

    def ask(
        self,
        device: Device,
        holders: dict[str, list[Device]],
        person: str | None = None,
        expect: str = "member",
    ) -> Asking:
        """From now on the device asks holders (`covey request-join`, or `covey
        recover --person` with the paper's words): whenever it is on, with a code
        open; a code that expires or a device that goes off means asking again.
        The holders' users approve when one of their devices is at hand."""
        asking = Asking(device, person, holders, expect, asked_at=self.world.now)
        self.askings.append(asking)
        self._ask_again(asking)
        for name in holders:
            self._approve_later(asking, name)
        return asking

    def _ask_again(self, asking: Asking) -> None:
        world = self.world
        if asking.claimed_at is not None:
            return
        if asking.device.node is None:
            world.at(world.now + 600, partial(self._ask_again, asking))
            return
        words = tuple(self.paper) if asking.person is not None else ()
        action = io.AskHolders(self.group, asking.person, int(ASK_LIFETIME), words)

        def on_reply(reply: io.Reply) -> None:
            if reply.error is None and reply.data.get("event") == "asking":
                asking.code = reply.data["code"]
                asking.codes += 1
            elif reply.error is None and reply.data.get("event") == "claimed":
                asking.code = None
                asking.claimed_at = world.now
                asking.claim = bytes.fromhex(reply.data["claim"])
                asking.group_id = bytes.fromhex(reply.data["group_id"])
                world.trace(f"user: {asking.device.name} claimed")
            elif reply.final:
                asking.code = None
                self._refuse(f"ask: {reply.error or reply.data.get('event')}")
                world.at(world.now + world.rand.uniform(60, 600), partial(self._ask_again, asking))

        world.command(asking.device, action, on_reply)

    def _approve_later(self, asking: Asking, name: str) -> None:
        world = self.world
        if self.done:
            return
        world.at(
            world.now + world.rand.exponential(APPROVE_EVERY), partial(self._approve, asking, name)
        )

    def _approve(self, asking: Asking, name: str) -> None:
        """A holder person's user, if a device of theirs is at hand with the asking
        one: look first (`covey recovery approve CODE`), then approve the device
        looked at."""
        world = self.world
        if asking.claimed_at is not None or name in asking.approved:
            return
        if name in asking.busy:
            self._approve_later(asking, name)
            return
        code = asking.code
        holder = next((d for d in asking.holders[name] if self._at_hand(d, asking.device)), None)
        if code is None or holder is None:
            self._approve_later(asking, name)
            return
        asking.busy.add(name)

        def done(why: str | None) -> None:
            asking.busy.discard(name)
            if why is not None:
                self._refuse(f"approve: {why}")
            self._approve_later(asking, name)

        def on_approve(reply: io.Reply) -> None:
            if not reply.final:
                return
            event = reply.data.get("event")
            if reply.error is None and event == "approved":
                asking.approved.add(name)
                world.trace(f"user: {holder.name} approved {asking.device.name}")
            elif reply.error is not None and "already" in str(reply.data.get("message", "")):
                asking.approved.add(name)  # (another device of theirs did, earlier)
            done(reply.error or (None if event == "approved" else event))

        def on_look(reply: io.Reply) -> None:
            if not reply.final:
                return
            if reply.error is not None or reply.data.get("event") != "looked":
                world.trace(f"user: look failed {reply.data}")
                done(reply.error or reply.data.get("event"))
                return
            if reply.data.get("safety_words") != asking.device.me.record.safety_words:
                done("the safety words differ")
                return
            approve = io.ApproveRequest(code, reply.data["device_id"])
            if not world.command(holder, approve, on_approve):
                done("device off")

        if not world.command(holder, io.ApproveRequest(code, ""), on_look):
            done("device off")

    def veto_when_seen(self, device: Device, start: float, end: float) -> None:
        """The person's own device, whenever it is on, vetoes a pending recovery of
        its person that it holds (the user reads `covey up`'s notice)."""
        self.every(600.0, start, end, partial(self._veto, device))

    def _veto(self, device: Device) -> None:
        node = device.node
        if node is None:
            return
        me = device.id
        for group in node.groups.values():
            if group.log.state is None or me not in group.state.members:
                continue
            mine = group.state.person(me)
            for claim_id, claim in group.state.claims.items():
                if claim.status == "pending" and claim.claim.person == mine:

                    def on_reply(reply: io.Reply) -> None:
                        if reply.error is None:
                            self.vetoes += 1
                        else:
                            self._refuse(f"veto: {reply.error}")

                    self.world.command(
                        device, io.VetoClaim(group.state.name, claim_id.hex()), on_reply
                    )
                    return

    def _check_askings(self) -> None:
        """Note when each claim completes (or is vetoed) in the merged log, and when
        its device first holds the current key as a member."""
        for asking in self.askings:
            if asking.claim is None or asking.group_id is None or asking.member_at is not None:
                continue
            truth = self.invariants.truth.get(asking.group_id)
            state = None if truth is None else truth.state
            if state is None:
                continue
            claim = state.claims.get(asking.claim)
            if claim is not None and claim.status == "completed" and asking.completed_at is None:
                asking.completed_at = self.world.now
            if claim is not None and claim.status == "vetoed" and asking.vetoed_at is None:
                asking.vetoed_at = self.world.now
            node = asking.device.node
            group = None if node is None else node.groups.get(asking.group_id)
            if (
                group is not None
                and group.log.state is not None
                and asking.device.id in group.state.members
                and group.state.current_epoch.id in group.keys
            ):
                asking.member_at = self.world.now

    def final(self) -> list[dict[str, Any]]:
        """Once healed: each asking ended as it had to, and what it took (seconds
        from asking): `recovery-liveness` and `veto-wins`."""
        found = []
        for asking in self.askings:
            name = asking.device.name
            truth = None if asking.group_id is None else self.invariants.truth.get(asking.group_id)
            state = None if truth is None else truth.state
            claim = (
                None if state is None or asking.claim is None else state.claims.get(asking.claim)
            )
            if asking.expect == "member":
                if claim is None or state is None:
                    raise Violation("recovery-liveness", f"{name}'s request was never claimed")
                if claim.status != "completed" or asking.device.id not in state.members:
                    raise Violation(
                        "recovery-liveness", f"{name}'s claim is {claim.status} after the heal"
                    )
                if asking.member_at is None:
                    raise Violation("recovery-liveness", f"{name} never held the current key")
                for old in self.world.devices:
                    if (
                        asking.person is not None
                        and old is not asking.device
                        and (old.person == asking.person and old.id in state.members)
                    ):
                        raise Violation(
                            "recovery-liveness", f"{old.name}, recovered from, is a member"
                        )
            elif (asking.expect == "refused" and claim is not None) and (
                claim.status != "vetoed" or state is None or asking.device.id in state.members
            ):
                raise Violation("veto-wins", f"{name}'s vetoed claim is {claim.status}")
            found.append(
                {
                    "device": name,
                    "kind": "admit" if asking.person is None else "recover",
                    "expect": asking.expect,
                    "codes": asking.codes,
                    "approved": sorted(asking.approved),
                    **{
                        what: None if at is None else round(at - asking.asked_at, 3)
                        for what, at in (
                            ("claimed", asking.claimed_at),
                            ("completed", asking.completed_at),
                            ("member", asking.member_at),
                            ("vetoed", asking.vetoed_at),
                        )
                    },
                }
            )
        return found
