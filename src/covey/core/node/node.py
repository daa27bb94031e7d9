"""One device's whole behaviour as a pure state machine: events in, effects out.

DESIGN. `Node.handle(event, now, rng)` is the only way in. The node holds
this device's identity, its groups (in memory: the driver persists what
`Persist` names, it never reloads), its connections (`links`), the adverts
it has seen, its open invitations and joins, and its schedule. It decides
everything the protocol decides:

* **Adverts.** While it serves (`covey up`), it advertises pairwise
  discovery tags (`covey.core.discovery`) for its fellow members under a
  fresh random name and salt, replaced every hour and whenever the set of
  devices it advertises for changes. Each open invitation has an advert of
  its own. An advert seen that is not exactly covey's shape is ignored.
* **Dialing.** It keeps the adverts one of its groups recognizes (at most
  `MAX_ADVERTS`, and `ADVERTS_PER_DEVICE` per device), and syncs with each
  fellow member once per *change* (`Peer`): when it first sees an advert
  of it, and whenever its own logs changed since its last sync with it (a
  local command, ops received from anyone, a heal). A failed dial or sync
  is retried after `RETRY_BASE` seconds, doubling up to `RETRY_MAX`, on the
  device's next most recent advert. Because adverts change hourly, every
  pair of devices on a LAN syncs at least once an hour even when nothing
  changed. At most `MAX_DIALS` dials at once, one per device, each done
  within `DIAL_TIMEOUT`.
* **Accepting.** At most `MAX_CONNECTIONS` accepted connections at once and
  `MAX_PER_ADDRESS` from one address; when all are taken, a new one drops
  the oldest that has sent no whole message, else the oldest that has not
  yet proven a known device, else it is refused. A dialer this device does
  not know may introduce itself (`introduce`: the ops that make it a
  member, taken through the logs and persisted, `covey.core.introduction`).
* **Probes.** A fellow member that may not know this device (it was away
  when this device was added) does not advertise for it, so none of its
  adverts is recognized here. While such a member has no advert recognized,
  the adverts not recognized are dialed for it, each address once, then
  after `PROBE_AGAIN` doubling to `PROBE_AGAIN_MAX`, `MAX_PROBES` at once,
  with this device's proof and introduction sealed to that member
  (`introduction_for`).
* **Healing.** A group whose current key is not held by exactly its members
  is rotated by its most senior member at once, and by the member ranked k
  after k x `HEAL_DELAY` seconds, unless a healing rotation arrives first.
* **Commands** from the local user (create, rotate, heal, remove, change a
  role, leave, shred, invite, join) are answered with `Reply` effects,
  after the `Persist` of what they changed. A removal or a role change
  waits up to `TELL_WAIT` seconds for the members online to sync, and its
  reply says who was told and who is still to hear of it.
* **Leaving.** A device that left a group (`Leave`: it signs its own
  removal, and its keys for the group are erased in the same transaction)
  keeps the group's ops, and keeps advertising for and dialing the
  remaining members, until one of them has synced with it since; then it
  deletes the group. So a leave made with nobody online still gets out.
* **Removed devices.** A device that learns it was removed says so
  (`Notify("removed")`) and stops advertising for and dialing that group.
  A member that sees the advert of a device removed from one of its groups
  dials it (until one sync worked, at most `MAX_REMOVED_DIALS` connections
  that reached it in the node's life; a dial that reaches nothing only
  backs off) so it learns of its removal: the sync sends it the causal
  past of the op that removed it, and nothing after (`covey.core.sync`).

Persist, then send: every change is followed by a `Persist` effect before
any `Send` that could tell a peer about it (`io` says what a driver must do).
The node draws randomness only from the `rng` of the event it is handling,
and reads time only from its `now`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from covey.core import (
    Rng,
    channel,
    crypto,
    discovery,
    escrow,
    introduction,
    membership,
    pairing,
    relayitems,
    relaylink,
    roster,
    shares,
)
from covey.core.group import Group
from covey.core.identity import DeviceRecord, Identity, validate_name
from covey.core.node import asking, io, relays, tunnel, views
from covey.core.node.io import ConnId, Effect
from covey.core.node.links import (
    Accepted,
    ChannelLink,
    InviteLink,
    JoinLink,
    Link,
    closed_early,
)
from covey.core.node.relays import (
    DeliverVisit,
    FetchVisit,
    MirrorVisit,
    RelaySchedule,
    Visit,
    puts_for,
)
from covey.core.node.tunnel import Rendezvous
from covey.core.node.views import describe
from covey.core.ops import MAX_VETO, MIN_VETO, PERSON_BYTES, AddRelay, Op, request_id
from covey.errors import (
    CoveyError,
    GroupExists,
    HandshakeFailed,
    InvalidArgument,
    InvalidInput,
    NoSuchGroup,
    NoSuchPerson,
    NotAllowed,
    NotAMember,
    PeerRefused,
    UsageError,
)

#: Accepted connections served at once; more are refused, not queued.
MAX_CONNECTIONS: Final = 16
#: Accepted connections from one address at once (one host cannot take them all).
MAX_PER_ADDRESS: Final = 2
#: Devices dialed at once, and the seconds one dial (connect, handshake, sync) may take.
MAX_DIALS: Final = 4
DIAL_TIMEOUT: Final = 60.0
#: Names of this node's own adverts remembered, withdrawn ones included, so
#: that one reported late is never taken for a stranger's (a new name an hour
#: and one per invitation: 64 is days of them).
MAX_OWN_ADVERTS: Final = 64
#: Adverts remembered (those that matter: recognized, or an invitation's),
#: and the most recent adverts kept per known device.
MAX_ADVERTS: Final = 256
ADVERTS_PER_DEVICE: Final = 4
#: Seconds before retrying an advert whose dial or sync failed, doubling to RETRY_MAX.
RETRY_BASE: Final = 5.0
RETRY_MAX: Final = 600.0
#: Seconds each rank in the seniority order waits before healing a group.
HEAL_DELAY: Final = 30.0
#: Handshakes a joiner lets fail before giving up (each is one guess at the code).
JOIN_ATTEMPTS: Final = pairing.MAX_ATTEMPTS
#: Seconds a joiner whose attempt failed still waits for another matching advert.
RETRY_GRACE: Final = 3.0
#: Open invitations and joins at once.
MAX_INVITATIONS: Final = 16
#: Relays an invitation waits at for a joiner (the first of the group's, by key).
PAIR_RELAYS: Final = 2
#: Seconds an invitation may stay open, and a join may look for its inviter.
MIN_INVITATION: Final = 10
MAX_INVITATION: Final = 24 * 3600
MAX_JOIN_WAIT: Final = 3600.0
#: Seconds a removal or role change waits for the members online to sync
#: before its reply says who is still to hear of it.
TELL_WAIT: Final = 10.0
#: Commands waiting so at once; more reply at once.
MAX_TELLINGS: Final = 16
#: Dials a node makes, in its life, to a device removed from one of its groups
#: to tell it so. Bounded: a removed device that fails every sync on purpose
#: must not be dialed forever.
MAX_REMOVED_DIALS: Final = 3
#: Probes: a fellow member that may not know this device (it was added while
#: that one was away) does not advertise for it, so its adverts are not
#: recognized here. Each covey advert not recognized is dialed for such a
#: member (the proof and introduction sealed to that member, which nobody
#: else can open): once, then again after PROBE_AGAIN seconds, doubling up
#: to PROBE_AGAIN_MAX, per address and member sought; MAX_PROBES at once
#: (counted in MAX_DIALS), one per member.
MAX_PROBES: Final = 2
PROBE_AGAIN: Final = 3600.0
PROBE_AGAIN_MAX: Final = 86400.0
#: (Member sought, address) pairs remembered for probes (the oldest forgotten first).
MAX_PROBED: Final = 1024


@dataclass(frozen=True)
class NodeConfig:
    """How a node behaves; `serve=False` for a node that only pairs (`covey
    invite` or `covey join` with no `covey up` running)."""

    serve: bool = True
    #: Seconds between fetches of this device's inbox at each group relay.
    relay_every: float = relays.FETCH_EVERY
    #: The person this device's owner said it is (`covey init --person`): it
    #: places itself so in groups it founds, and proposes it when joining.
    person: str | None = None
    #: Deals recovery shares: (threshold, count) -> a fresh dealing. At the
    #: edge (`covey.recoverydeal.deal`: SLIP-39 draws its randomness inside);
    #: None, a node that cannot set recovery up.
    dealer: Callable[[int, int], shares.Dealt] | None = None


@dataclass
class Advert:
    """An advert of a device we know (or one that may be an inviter we look for)."""

    addresses: tuple[str, ...]
    port: int
    #: The device whose advert it is (None: only an invitation's).
    device: DeviceRecord | None = None
    #: Its TXT record, kept for a pairing started later with the same code (a
    #: holder's approve after its look): mDNS says an advert once.
    txt: bytes = b""


@dataclass
class Peer:
    """When to sync with one known device: per device, not per advert.

    Anyone can copy a device's tags into adverts of their own; keeping the
    schedule per device means copies cannot multiply dials or reset the
    backoff, only take turns with the real advert.
    """

    #: Names of this device's recent adverts, oldest first (at most ADVERTS_PER_DEVICE).
    adverts: list[str] = field(default_factory=list)
    #: The node's log generation at the start of the last sync that worked.
    synced: int = -1
    failures: int = 0
    retry_at: float = 0.0
    dialing: ConnId | None = None
    #: The addresses and port the last sync that worked reached.
    good: tuple[tuple[str, ...], int] | None = None
    #: The groups whose add of this device the peer holds, as its hello in the
    #: last sync said (None: no sync yet since this node started).
    knows: frozenset[bytes] | None = None


@dataclass
class OpenInvitation:
    invitation: pairing.Invitation
    advert: str
    #: The person the new device joins (None: the one it proposes, if any).
    person: str | None = None
    #: A person the joining device proposed that was not followed (it names
    #: an existing person, or one much like it): the inviter is told.
    unfollowed: str | None = None
    #: The relays it waits at too (a joiner on another network meets it there),
    #: and when to wait at one again whose connection broke.
    relays: list[AddRelay] = field(default_factory=list)
    redial_at: float = 0.0
    #: Set for a request to holders this device makes (not an invitation).
    asking: Asking | None = None


@dataclass
class Asking:
    """This device's open request to a group's share holders (PROTOCOL.md 19.2)."""

    ask: asking.Ask
    #: Paper shares typed on this device (a recovery).
    paper: list[shares.Share] = field(default_factory=list)
    #: Released shares, by SLIP-39 member index.
    released: dict[int, shares.Share] = field(default_factory=dict)
    #: Names of the holders that approved.
    approvers: list[str] = field(default_factory=list)
    #: The group's log as the holders sent it (forwarded to the next holder).
    replica: Group | None = None


@dataclass
class Approving:
    """A holder's look at, or approval of, one asking device."""

    #: "" only look; "*" approve whichever; else the device ID to approve.
    device: str
    document: dict[str, Any] = field(default_factory=dict)
    #: Why the rules refused the approval (said in the command's reply).
    error: CoveyError | None = None


@dataclass
class Telling:
    """A change whose reply waits for the members online to sync (at most TELL_WAIT).

    A sync that finished with a member counts when it started at or after
    `since` (the generation the change was persisted at): before, the
    change may not have been in what was sent.
    """

    group: bytes
    since: int
    deadline: float
    document: dict[str, object]
    #: Devices still to hear of it, and (name, ID) of each, taken at the start.
    pending: set[bytes]
    labels: dict[bytes, dict[str, str]]
    told: list[bytes] = field(default_factory=list)
    #: A leave: done at the first member told (the node then deletes the group).
    leave: bool = False


@dataclass
class Joining:
    secret: pairing.Secret
    deadline: float
    address: tuple[str, int] | None
    #: Names of adverts with the invitation's tag, not yet tried, oldest first.
    candidates: list[str] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    attempts: int = 0
    link: ConnId | None = None
    last_error: str | None = None
    #: The relay to meet the inviter at (`covey join --relay`), and the rendezvous there.
    relay: AddRelay | None = None
    rendezvous: ConnId | None = None
    #: Set when this is a holder approving an asking device, not a join.
    approving: Approving | None = None


class Node:
    """One device: its groups, connections, adverts, schedule and commands."""

    def __init__(
        self,
        me: Identity,
        groups: Iterable[Group] = (),
        config: NodeConfig = NodeConfig(),
    ) -> None:
        self.me = me
        self.groups: dict[bytes, Group] = {g.id: g for g in groups}
        self.config = config
        self.discovery = discovery.Discovery(me)
        self.links: dict[ConnId, Link] = {}
        self.adverts: dict[str, Advert] = {}
        self.peers: dict[bytes, Peer] = {}
        #: Adverts seen that matter to nothing yet (the most recent MAX_ADVERTS).
        self.others: dict[str, io.AdvertSeen] = {}
        self.invitations: dict[int, OpenInvitation] = {}
        self.joins: dict[int, Joining] = {}
        #: How many times any log changed: an advert synced at an older
        #: generation is due again.
        self.generation = 0
        self.now = 0.0
        self._rng: Rng | None = None
        self._next_dial = -1
        #: The names of this node's adverts, withdrawn ones too (an advert seen
        #: late, after its withdrawal, is still ours): at most MAX_OWN_ADVERTS.
        self._own_adverts: dict[str, None] = {}
        #: The name of this node's own advert for its fellow members, if any.
        self._advert: str | None = None
        self._heal_since: dict[bytes, float] = {}
        #: (group, pending claim) announced since this node started (`covey up`
        #: says each pending claim again at each start). When this device first
        #: held a claim is kept in its store (`Group.claims_held`).
        self._claims_announced: set[tuple[bytes, bytes]] = set()
        #: Group -> when to try a claim step again that failed (never a retry storm).
        self._claims_retry: dict[bytes, float] = {}
        #: A request's final "claimed" reply, held until the holder's session that
        #: claimed it has been sent its last message.
        self._claimed_replies: dict[int, io.Reply] = {}
        #: (group, claim) -> when this node first saw it witnessed enough: the
        #: member ranked k completes k x HEAL_DELAY after that.
        self._claims_ready: dict[tuple[bytes, bytes], float] = {}
        #: (group, relay key) -> this device's inbox ID there (`_announce_inboxes`).
        self._my_inboxes: dict[tuple[bytes, bytes], bytes] = {}
        #: When each group's relays are due, and what each member is believed to hold.
        self.relay_schedule = RelaySchedule()
        #: Pairing through a relay: virtual connection -> (its rendezvous, session),
        #: and back (`covey.core.node.tunnel`).
        self.virtual: dict[ConnId, tuple[ConnId, bytes]] = {}
        self.sessions: dict[tuple[ConnId, bytes], ConnId] = {}
        #: Per group: the history gaps our last healing rotation was for, and
        #: until when not to rotate again for the same ones (no storm when a
        #: healing rotation cannot close them: say, its link does not open).
        self._history_tried: dict[bytes, tuple[frozenset[tuple[bytes, bytes]], float]] = {}
        self._wake: float | None = None
        self._known: tuple[int, dict[bytes, DeviceRecord]] | None = None
        self._advert_at: tuple[int, frozenset[bytes]] | None = None
        self._advert_gen = -1
        #: Commands whose replies wait for the members to hear of their change.
        self.tellings: dict[int, Telling] = {}
        #: Groups this device left whose leave no member has yet: the
        #: generation from which a finished sync with a member delivers it.
        self.leaving: dict[bytes, int] = {}
        #: Per group: (log length, how this device stopped being a member).
        self._removal: dict[bytes, tuple[int, roster.Removal | None]] = {}
        #: Per group: (log length, devices removed from it -> the op that did).
        self._removed: dict[bytes, tuple[int, dict[bytes, Op]]] = {}
        #: Devices removed from a group of ours: the generation we noticed it,
        #: and the dials made to tell them (at most MAX_REMOVED_DIALS).
        self._removed_since: dict[bytes, int] = {}
        self._removed_dials: dict[bytes, int] = {}
        #: Groups whose removal of this device was already reported.
        self._removal_reported: set[bytes] = set()
        #: Probes made: (member sought, addresses, port) -> (when it is due
        #: again, probes made there), at most MAX_PROBED.
        self._probed: dict[tuple[bytes, tuple[str, ...], int], tuple[float, int]] = {}
        #: Introductions for devices, made at this log generation.
        self._introductions: tuple[int, dict[bytes, channel.Introduction]] = (-1, {})
        #: Per group: what it looked like when last seen (for the report of
        #: what a sync changed); the connection whose bytes are being fed
        #: now; per sync connection, per group, what it changed so far.
        self._views: dict[bytes, views.Snapshot] = {}
        self._feeding: ConnId | None = None
        self._sync_changes: dict[ConnId, dict[bytes, dict[str, Any]]] = {}
        for group in self.groups.values():
            if self._is_leaving(group):
                group.shred()  # (a replay from the ops alone would re-open their wraps)
                self.leaving[group.id] = 0
        self._refresh_views()

    # --- the one way in -------------------------------------------------------

    def handle(self, event: io.Event, now: float, rng: Rng) -> list[Effect]:
        """Take one event; return the effects it calls for, in order."""
        self.now = now
        self._rng = rng
        out: list[Effect] = []
        try:
            self._dispatch(event, out)
            self._housekeeping(out)
            self._orphans(out)
            out = self._route_virtual(out)
            self._leave_settled_meetings(out)
            self._refresh_views()
        except Exception as exc:  # a bug: reported, and the node goes on
            out.append(
                io.Notify(
                    "internal_error", {"where": type(event).__name__, "error": type(exc).__name__}
                )
            )
        wake = self._next_wake()
        if wake is not None and wake != self._wake:
            out.append(io.WakeAt(wake))
        self._wake = wake
        return out

    def _dispatch(self, event: io.Event, out: list[Effect]) -> None:
        match event:
            case io.Tick():
                pass
            case io.AdvertSeen():
                self._advert_seen(event)
            case io.AdvertLost():
                self.adverts.pop(event.name, None)
                self.others.pop(event.name, None)
            case io.Incoming():
                self._incoming(event, out)
            case io.Connected():
                self._connected(event, out)
            case io.Received():
                self._received(event, out)
            case io.Closed():
                self._closed(event.conn, event.reason, out)
            case io.Command():
                self._command(event, out)
            case io.Cancel():
                self._cancel(event.request, out)

    @property
    def rng(self) -> Rng:
        assert self._rng is not None, "only while handling an event"
        return self._rng

    # --- what links ask of the node (links.LinkHost) ---------------------------

    def _known_devices(self) -> dict[bytes, DeviceRecord]:
        if self._known is None or self._known[0] != self.generation:
            me = self.me.device_id.raw
            records = {
                device: record
                for g in self.groups.values()
                if g.log.state is not None
                for device, record in g.state.devices.items()
                if device != me
            }
            self._known = (self.generation, records)
        return self._known[1]

    def known_device(self, device_id: bytes) -> DeviceRecord | None:
        return self._known_devices().get(device_id)

    def introduce(
        self,
        device_id: bytes,
        offered: channel.Introduction,
        check: Callable[[DeviceRecord], None],
        out: list[Effect],
    ) -> int:
        me = self.me.device_id.raw
        changed = introduction.admit(self.groups, me, device_id, offered, check)
        if changed:
            self.persist(changed, out)  # before the answer, whatever it is
        return len(changed)

    def introduction_for(self, device_id: bytes, *, probe: bool) -> channel.Introduction:
        """What to seal with this device's proof for `device_id`: per group both are
        members of where it may not know us, the ops that make us a member.

        "May not know us": for a probe, unless its hello in our last sync named
        the group (or the log shows it holds our add); for a dial of an advert
        of it (which it makes only for devices it knows), only a group its hello
        in our last sync did not name (none before a first sync).
        """
        generation, made = self._introductions
        if generation != self.generation:
            made = {}
            self._introductions = (self.generation, made)
        key = device_id + (b"p" if probe else b"d")
        if key not in made:
            peer = self.peers.get(device_id)
            knows = None if peer is None else peer.knows
            groups = [
                g
                for _, g in sorted(self.groups.items())
                if (probe if knows is None else g.id not in knows)
                and g.id not in self.leaving
                and g.log.state is not None
            ]
            made[key] = introduction.introduction(groups, self.me.device_id.raw, device_id)
        return made[key]

    def persist(self, groups: set[bytes], out: list[Effect]) -> None:
        for group_id in groups:
            group = self.groups.get(group_id)
            if group is not None and self._is_leaving(group):
                group.shred()  # keys a late op wrapped for us are not kept either
        out.append(io.Persist(groups=tuple(sorted(groups))))
        self.generation += 1
        self._note_changes(groups)
        self._deliver_soon(groups)

    # --- what a sync changed (its `synced` notification) ---------------------------

    def _note_changes(self, groups: Iterable[bytes]) -> None:
        """Credit what changed in `groups` to the sync being fed now, if any.

        (Only a sync's changes are reported so: a pairing's add is the
        invitation's reply, a command's change its own reply.)
        """
        feeding = self._feeding
        if feeding is not None and not isinstance(self.links.get(feeding), ChannelLink):
            feeding = None
        for group_id in groups:
            group = self.groups.get(group_id)
            if group is None:
                continue
            before = self._views.get(group_id)
            after = views.snapshot(group)
            if feeding is not None and before is not None:
                found = views.changes(before, group)
                if found is not None:
                    merged = self._sync_changes.setdefault(feeding, {})
                    merged[group_id] = _merge(merged.get(group_id), found)
            if after is not None:
                self._views[group_id] = after

    def _refresh_views(self) -> None:
        """Views of groups changed otherwise (commands, heals, joins): not reported."""
        for group_id, group in self.groups.items():
            view = self._views.get(group_id)
            if view is None or view.ops != len(group.log):
                after = views.snapshot(group)
                if after is not None:
                    self._views[group_id] = after
        for group_id in [g for g in self._views if g not in self.groups]:
            del self._views[group_id]

    def _report_sync(self, link: Link, out: list[Effect], *, finished: bool) -> None:
        """Say what a sync changed (nothing when it changed nothing)."""
        changed = self._sync_changes.pop(link.conn, None)
        if not changed or not isinstance(link, ChannelLink) or link.peer is None:
            return
        out.append(
            io.Notify(
                "synced",
                {
                    "peer": link.peer.name,
                    "peer_id": str(link.peer.device_id),
                    "address": link.address,
                    "changes": list(changed.values()),
                    "refused": link.refused,
                    "finished": finished,
                },
            )
        )

    # --- where this device stands in each group ---------------------------------

    def removal(self, group: Group) -> roster.Removal | None:
        """How this device stopped being a member of `group` (None: it is one)."""
        cached = self._removal.get(group.id)
        if cached is None or cached[0] != len(group.log):
            cached = (len(group.log), roster.removal(group.log, self.me.device_id.raw))
            self._removal[group.id] = cached
        return cached[1]

    def _is_leaving(self, group: Group) -> bool:
        gone = self.removal(group)
        return gone is not None and gone.left

    def _removed_from(self, group: Group) -> dict[bytes, Op]:
        """Devices removed from `group` (no longer members) -> the op that removed each."""
        cached = self._removed.get(group.id)
        if cached is None or cached[0] != len(group.log):
            cached = (len(group.log), roster.removals(group.log))
            self._removed[group.id] = cached
        return cached[1]

    def _watch_standing(self, out: list[Effect]) -> None:
        """Report a removal of this device once; keep `leaving` true to the logs."""
        for group in list(self.groups.values()):
            if group.log.state is None:
                continue
            gone = self.removal(group)
            if gone is None:
                self._removal_reported.discard(group.id)
                self.leaving.pop(group.id, None)
            elif gone.left:
                if group.id not in self.leaving:
                    group.shred()
                    self.leaving[group.id] = self.generation
            elif group.id not in self._removal_reported:
                self._removal_reported.add(group.id)
                self.leaving.pop(group.id, None)
                out.append(
                    io.Notify(
                        "removed",
                        {"group": group.state.name, "by": gone.by_name, "time": gone.time},
                    )
                )

    # --- adverts and dialing --------------------------------------------------

    def _advert_seen(self, event: io.AdvertSeen) -> None:
        if event.name in self._own_adverts:
            return
        advert = discovery.read_advert(event.txt)
        if advert is None:
            # Not a covey advert (junk, or another version): ignored, and
            # whatever this name said before is forgotten.
            self.adverts.pop(event.name, None)
            self.others.pop(event.name, None)
            return
        tags = advert.tags
        for joining in self.joins.values():
            fresh = event.name not in joining.tried and event.name not in joining.candidates
            if joining.secret.tag in tags and fresh and len(joining.tried) < MAX_ADVERTS:
                joining.candidates.append(event.name)
                del joining.candidates[:-MAX_ADVERTS]  # the most recent ones
        device = None
        if self.config.serve:
            known = self._known_devices()
            device = self.discovery.recognize(advert, known, int(self.now))
        wanted = device is not None or any(j.secret.tag in tags for j in self.joins.values())
        self.adverts.pop(event.name, None)
        self.others.pop(event.name, None)
        if not wanted:
            # Kept apart (and bounded apart), so a flood of strangers' adverts
            # cannot crowd out the ones that matter; a join started later
            # looks here for its inviter.
            self.others[event.name] = event
            while len(self.others) > MAX_ADVERTS:
                del self.others[next(iter(self.others))]
            return
        addresses = tuple(dict.fromkeys(plain_address(a) for a in event.addresses))
        self.adverts[event.name] = Advert(addresses, event.port, device, event.txt)
        if device is not None:
            peer = self.peers.setdefault(device.device_id.raw, Peer())
            if event.name in peer.adverts:
                peer.adverts.remove(event.name)
            peer.adverts.append(event.name)
            while len(peer.adverts) > ADVERTS_PER_DEVICE:
                self.adverts.pop(peer.adverts.pop(0), None)
        while len(self.adverts) > MAX_ADVERTS:  # forget the oldest
            del self.adverts[next(iter(self.adverts))]

    def _dial(self, addresses: tuple[str, ...], port: int, out: list[Effect]) -> ConnId:
        conn = self._next_dial
        self._next_dial -= 1
        out.append(io.Dial(conn, addresses, port))
        return conn

    def _dial_device(
        self,
        addresses: tuple[str, ...],
        port: int,
        record: DeviceRecord,
        offered: channel.Introduction | None,
        out: list[Effect],
    ) -> ChannelLink:
        """Dial a device at an address, expecting `record`'s proof (sync, tell or probe)."""
        conn = self._dial(addresses, port, out)
        link = ChannelLink(
            self,
            conn,
            "",
            self.now,
            self.rng,
            initiator=True,
            expect=record,
            introduction=offered,
        )
        link.generation = self.generation
        link.dialed = (addresses, port)
        self.links[conn] = link
        return link

    def _dial_due(self, out: list[Effect]) -> None:
        """Dial each fellow member that is due, one connection per device, MAX_DIALS in all.

        Current members are dialed, and only while some advert of theirs is
        up. A device removed from one of our groups that still advertises
        for us (it does not know yet) is dialed to tell it, until one sync
        worked, at most MAX_REMOVED_DIALS connections that reached it in
        the node's life (dials that reach nothing only back off): it gets
        the causal past of its removal and nothing after (`covey.core.sync`).
        The address tried first is the one the last good sync reached
        (`Peer.good`: copied adverts cannot push it out), then the most
        recent adverts, one more after each failure.
        """
        if not self.config.serve:
            return
        dialing = sum(1 for link in self.links.values() if _dialing(link))
        targets = self._targets()
        removed = self._to_tell_removed(targets)
        for device_id, peer in self.peers.items():
            if dialing >= MAX_DIALS:
                return
            peer.adverts = [name for name in peer.adverts if name in self.adverts]
            record = targets.get(device_id) or removed.get(device_id)
            due = self.generation
            if device_id not in targets:
                due = self._removed_since.get(device_id, self.generation)
                if self._removed_dials.get(device_id, 0) >= MAX_REMOVED_DIALS:
                    continue
            if (
                not peer.adverts
                or peer.dialing is not None
                or peer.synced >= due
                or peer.retry_at > self.now
                or record is None
            ):
                continue
            choices = [] if peer.good is None else [peer.good]
            for name in reversed(peer.adverts):
                advert = self.adverts[name]
                if (advert.addresses, advert.port) not in choices:
                    choices.append((advert.addresses, advert.port))
            addresses, port = choices[peer.failures % len(choices)]
            offered = (
                self.introduction_for(device_id, probe=False) if device_id in targets else None
            )
            link = self._dial_device(addresses, port, record, offered, out)
            link.dials_for = device_id
            peer.dialing = link.conn
            dialing += 1

    def _probe_due(self, out: list[Effect]) -> None:
        """Dial adverts not recognized, for fellow members that may not know this device.

        Such a member (it was away when this device was added) advertises
        for the devices it knows, not for this one, so none of its adverts
        is recognized here, and it cannot recognize ours. A member with no
        advert recognized and an introduction to make (`introduction_for`:
        a group where nothing shows it holds our add) is sought: each covey
        advert not recognized, at an address no recognized advert has, is
        dialed for it, then again after PROBE_AGAIN, doubling to
        PROBE_AGAIN_MAX. The proof and introduction go sealed to the member
        sought: whoever else answers opens nothing, and closes (PROTOCOL.md
        section 14).
        """
        if not self.config.serve or not self.others:
            return
        probing = [link.probe_for for link in self.links.values() if link.probe_for is not None]
        dialing = sum(1 for link in self.links.values() if _dialing(link))
        if len(probing) >= MAX_PROBES or dialing >= MAX_DIALS:
            return
        sought = []
        for device_id, record in sorted(self._targets().items()):
            peer = self.peers.get(device_id)
            if device_id in probing or (
                peer is not None
                and (peer.dialing is not None or any(n in self.adverts for n in peer.adverts))
            ):
                continue
            offered = self.introduction_for(device_id, probe=True)  # (kept until a change)
            if offered:
                sought.append((device_id, record, offered))
        if not sought:
            return
        known = {(a.addresses, a.port) for a in self.adverts.values() if a.device is not None}
        places = [
            (seen.addresses, seen.port)
            for seen in self.others.values()
            if (seen.addresses, seen.port) not in known
        ]
        for device_id, record, offered in sought:
            if len(probing) >= MAX_PROBES or dialing >= MAX_DIALS:
                return
            due = next(
                (
                    place
                    for place in places
                    if self.now >= self._probed.get((device_id, *place), (self.now, 0))[0]
                ),
                None,
            )
            if due is None:
                continue
            addresses, port = due
            made = self._probed.pop((device_id, addresses, port), (self.now, 0))[1] + 1
            again = min(PROBE_AGAIN_MAX, PROBE_AGAIN * 2 ** (made - 1))
            self._probed[(device_id, addresses, port)] = (self.now + again, made)
            while len(self._probed) > MAX_PROBED:
                del self._probed[next(iter(self._probed))]
            link = self._dial_device(addresses, port, record, offered, out)
            link.probe_for = device_id
            probing.append(device_id)
            dialing += 1

    def _targets(self) -> dict[bytes, DeviceRecord]:
        """The devices this one advertises for: the other current members of its groups.

        Of a group this device left, the members too, until one has the leave;
        of a group it asked into, the members while its claim is pending.
        """
        me = self.me.device_id.raw
        return {
            device: member.record
            for g in self.groups.values()
            if g.log.state is not None
            and (me in g.state.members or g.id in self.leaving or self._claimant_in(g))
            for device, member in g.state.members.items()
            if device != me
        }

    def _claimant_in(self, group: Group) -> bool:
        """Whether this device asked into `group` and its claim is pending there: it
        advertises for the members (who know it once a completion adds it)."""
        me = self.me.device_id.raw
        return any(
            c.status == "pending" and c.claim.device.device_id.raw == me
            for c in group.state.claims.values()
        )

    def _to_tell_removed(self, targets: dict[bytes, DeviceRecord]) -> dict[bytes, DeviceRecord]:
        """Devices removed from a group of ours that may not know it yet.

        Each is dialed until one sync worked, at most MAX_REMOVED_DIALS
        connections that reached it in the node's life. (One that knows
        stops advertising for us, so it is not seen, and not dialed.)
        """
        me = self.me.device_id.raw
        found: dict[bytes, DeviceRecord] = {}
        for group in self.groups.values():
            if group.log.state is None or me not in group.state.members:
                continue
            for device in self._removed_from(group):
                if device != me and device not in targets:
                    found[device] = group.state.devices[device]
                    self._removed_since.setdefault(device, self.generation)
        return found

    def _own(self, name: str) -> None:
        """Remember `name` as one of this node's adverts (the oldest forgotten)."""
        self._own_adverts[name] = None
        while len(self._own_adverts) > MAX_OWN_ADVERTS:
            del self._own_adverts[next(iter(self._own_adverts))]

    def _refresh_advert(self, out: list[Effect]) -> None:
        """Advertise for this device's fellow members; a new advert (and name) every
        hour and whenever they change (a member added or removed)."""
        if not self.config.serve:
            return
        now = int(self.now)
        hour = now // discovery.HOUR
        if (
            self._advert_at is not None
            and self._advert_at[0] == hour
            and self._advert_gen == (self.generation)
        ):
            return
        self._advert_gen = self.generation
        targets = self._targets()
        stamp = (hour, frozenset(targets))
        if self._advert_at == stamp:
            return
        self._advert_at = stamp
        if self._advert is not None:
            out.append(io.Withdraw(self._advert))
            self._advert = None
        if targets:
            txt = self.discovery.advert(targets.values(), now, self.rng)
            name = self.rng(16).hex()
            out.append(io.Advertise(name, txt))
            self._own(name)
            self._advert = name

    # --- connections ----------------------------------------------------------

    def _incoming(self, event: io.Incoming, out: list[Effect]) -> None:
        address = plain_address(event.address)
        accepted = [link for link in self.links.values() if link.conn > 0]
        if sum(1 for link in accepted if link.address == address) >= MAX_PER_ADDRESS:
            out.append(io.Close(event.conn))
            return
        if len(accepted) >= MAX_CONNECTIONS:
            victim = self._evictable(accepted)
            if victim is None:
                out.append(io.Close(event.conn))
                return
            self._drop(victim, "dropped to make room for another", out)
        self.links[event.conn] = Accepted(event.conn, address, self.now)

    def _evictable(self, accepted: list[Link]) -> Link | None:
        """The connection to drop when all are taken, oldest first, if any may go.

        First one that has sent no whole message (strangers merely holding
        connections open: they cannot push out a handshake under way, such
        as a joiner's); then one that has not proven a known device; then
        one from a device that is no longer a fellow member, or that holds
        more than one connection (so neither a removed device nor one member
        can keep the others out).
        """
        unproven = [link for link in accepted if not link.proven]
        silent = [link for link in unproven if not link.heard]
        if silent:
            return silent[0]
        if unproven:
            return unproven[0]
        targets = self._targets()
        devices: dict[bytes, int] = {}
        for link in accepted:
            device = _proven_device(link)
            if device is not None:
                devices[device] = devices.get(device, 0) + 1
        for link in accepted:
            device = _proven_device(link)
            if device is not None and (device not in targets or devices[device] > 1):
                return link
        return None

    def _connected(self, event: io.Connected, out: list[Effect]) -> None:
        link = self.links.get(event.conn)
        if link is None:
            out.append(io.Close(event.conn))
            return
        link.address = plain_address(event.address)
        told = link.dials_for
        if told is not None and told in self._removed_since and told not in self._targets():
            # A dial to tell a removed device counts once it reaches an
            # address: one that reaches nothing (a stale advert, a device
            # off) only backs off, so a device off when it was removed is
            # still told when it comes back.
            self._removed_dials[told] = self._removed_dials.get(told, 0) + 1
        self._guard(link, lambda: link.connected(out), out)

    def _received(self, event: io.Received, out: list[Effect]) -> None:
        link = self.links.get(event.conn)
        if link is None:
            return
        if isinstance(link, Accepted):
            self._guard(link, lambda: self._promote(link, event.data, out), out)
            return
        self._guard(link, lambda: link.feed(event.data, self.now, out), out)

    def _promote(self, link: Accepted, data: bytes, out: list[Effect]) -> None:
        """Turn an accepted connection into the link its preamble names."""
        head = link.take_preamble(data)
        if head is None:
            return
        kind, tag, rest = head
        successor: Link
        tunnel = self.virtual.get(link.conn)
        meeting = self.links.get(tunnel[0]) if tunnel is not None else None
        if kind == channel.CHANNEL_PREAMBLE:
            if tunnel is not None:
                raise HandshakeFailed("only pairing goes through a rendezvous")
            if not self.config.serve:
                raise HandshakeFailed("this device is not syncing now")
            successor = ChannelLink(
                self, link.conn, link.address, link.started, self.rng, initiator=False
            )
            # What this sync sends is what the logs held from now on: a change
            # made at an older generation may not be in it (see `Telling`).
            successor.generation = self.generation
        else:
            found = [
                (request, open_)
                for request, open_ in self.invitations.items()
                if tag in open_.invitation.secret.advert_tags
                and (meeting is None or meeting.request == request)
            ]
            if not found:
                raise HandshakeFailed("no open invitation has that tag")
            request, open_ = found[0]
            if open_.asking is not None:  # (a request to holders: this device asks)
                successor = asking.AskLink(
                    self.me,
                    open_.invitation,
                    open_.asking.ask,
                    lambda holder, answer, o: self._asked(request, holder, answer, o),
                    partial(self._forwarded, request),
                    link.conn,
                    link.address,
                    link.started,
                    self.rng,
                )
            else:
                successor = InviteLink(
                    self.me,
                    open_.invitation,
                    lambda record, raw, person, o: self._welcome(request, record, raw, person, o),
                    link.conn,
                    link.address,
                    link.started,
                    self.rng,
                )
            successor.request = request
        successor.handshake_timeout = link.handshake_timeout
        self.links[link.conn] = successor
        if rest:
            successor.feed(rest, self.now, out)

    def _guard(self, link: Link, step: Callable[[], None], out: list[Effect]) -> None:
        """Run one step of a link; any failure closes that connection only.

        Only `covey.errors` types are expected from a peer's bytes; anything
        else is a bug, reported as `internal_error` (the simulator treats it
        as a violation), and still closes just that connection.
        """
        failure: Exception | None = None
        self._feeding = link.conn  # (what a sync changes is credited to it)
        try:
            step()
        except CoveyError as exc:
            failure = exc
        except Exception as exc:  # nothing a peer sends may stop the node
            failure = exc
            out.append(io.Notify("internal_error", {"where": "link", "error": type(exc).__name__}))
        finally:
            self._feeding = None
        if failure is not None:
            self._failed(self.links.get(link.conn, link), failure, out)
            return
        current = self.links.get(link.conn)
        if current is not None and current.finished:
            self._finish(current, out)

    def _failed(self, link: Link, exc: Exception, out: list[Effect]) -> None:
        reason = str(exc) if isinstance(exc, CoveyError) else "malformed input"
        if isinstance(link, InviteLink):
            self._invite_attempt_failed(link, exc, out)
        if isinstance(link, JoinLink):
            self._join_attempt_failed(link, exc, out)
        if link.dials_for is not None and (isinstance(exc, PeerRefused) or _unproven(link)):
            self._forget_fakes(link.dials_for, link.dialed)
        self._drop(link, reason, out)

    def _forget_fakes(
        self, device: bytes, dialed: tuple[tuple[str, ...], int] | None, *, keep_good: bool = False
    ) -> None:
        """Whoever answered at `dialed` did not prove it is `device`: forget its adverts for it.

        (Copies of a device's tags pointing elsewhere are found out by the
        first dial; forgetting them at once makes room for the real one.)
        """
        peer = self.peers.get(device)
        if peer is None:
            return
        for name in list(peer.adverts):
            advert = self.adverts.get(name)
            if advert is not None and (advert.addresses, advert.port) == dialed:
                peer.adverts.remove(name)
                del self.adverts[name]
        if peer.good == dialed and not keep_good:
            peer.good = None

    def _drop(self, link: Link, reason: str, out: list[Effect]) -> None:
        self._forget(link, failed=True)
        self._report_sync(link, out, finished=False)  # (what it changed before it failed)
        out.append(io.Close(link.conn))
        out.append(io.Notify("connection_failed", {"address": link.address, "reason": reason}))

    def _forget(self, link: Link, *, failed: bool) -> None:
        self.links.pop(link.conn, None)
        if isinstance(link, Visit):
            self._visit_ended(link, failed)
        peer = self.peers.get(link.dials_for) if link.dials_for is not None else None
        if peer is not None and peer.dialing == link.conn:
            peer.dialing = None
            if failed:
                peer.failures += 1
                peer.retry_at = self.now + min(RETRY_MAX, RETRY_BASE * 2 ** (peer.failures - 1))
            else:
                peer.failures = 0
                peer.synced = link.generation
                peer.good = link.dialed

    def _closed(self, conn: ConnId, reason: str, out: list[Effect]) -> None:
        link = self.links.get(conn)
        if link is None:
            return
        if isinstance(link, JoinLink) and not link.reached:
            # The dial failed: no handshake, no guess spent.
            self._forget(link, failed=True)
            joining = self._joining_of(link)
            if joining is not None:
                joining.link = None
                joining.last_error = reason
            return
        if isinstance(link, asking.ApproveLink) and link.answer is not None:
            # Answered (and the approval written): the asking device went away
            # before its last word, which only a recovery's claim needs.
            self._forget(link, failed=False)
            self._approved(link, out)
            return
        if isinstance(link, (InviteLink, JoinLink)):
            self._failed(link, closed_early(link), out)
            return
        if link.dials_for is not None and _unproven(link):
            # It took our sealed proof and went away without proving it is
            # the device dialed: not that device (or one that does not know
            # us). Its adverts there go; the last good address stays.
            self._forget_fakes(link.dials_for, link.dialed, keep_good=True)
        self._forget(link, failed=True)
        self._report_sync(link, out, finished=False)
        if isinstance(link, ChannelLink) and link.proven:
            out.append(io.Notify("connection_failed", {"address": link.address, "reason": reason}))

    def _finish(self, link: Link, out: list[Effect]) -> None:
        """A link's protocol ended well: record it and close the connection."""
        self._forget(link, failed=False)
        if isinstance(link, ChannelLink):
            result = link.result()
            assert result is not None
            self._knows(link, result.peer.device_id.raw, result.named)
            met = io.PeerMet(
                result.peer.device_id.raw, result.peer.name, link.address, int(self.now)
            )
            out.append(io.Persist(peers=(met,)))
            self._heard(result.peer.device_id.raw, link.generation, out)
            self._report_sync(link, out, finished=True)
            if link.generation == self.generation:  # nothing changed while it ran
                self._believe_synced(result.peer.device_id.raw)
        elif isinstance(link, asking.ApproveLink):
            self._approved(link, out)
        elif isinstance(link, asking.AskLink):
            # (each holder's session ends here; the request stays open until claimed)
            if link.request is not None and link.request in self._claimed_replies:
                out.append(self._claimed_replies.pop(link.request))
        elif isinstance(link, JoinLink):
            self._joined(link, out)
        elif isinstance(link, InviteLink):
            self._invited(link, out)
        elif isinstance(link, (FetchVisit, MirrorVisit)):
            self._heard_through_relay(link, out)
        if isinstance(link, Visit):
            self._report_visit(link, out)
        out.append(io.Close(link.conn))

    def _knows(self, link: ChannelLink, device: bytes, named: frozenset[bytes]) -> None:
        """A sync with `device` finished: note where its hello showed it knows us.

        If a group we share was missing and this sync carried no introduction
        for it, the device is due again at once (the next dial introduces us
        there); one that carried it and failed waits for the next change.
        """
        peer = self.peers.setdefault(device, Peer())
        peer.knows = named
        made = self._introductions[1]
        made.pop(device + b"p", None)
        made.pop(device + b"d", None)
        if link.probe_for is not None and peer.dialing is None:
            peer.synced, peer.good = max(peer.synced, link.generation), link.dialed
        missing = {group_id for group_id, _ in self.introduction_for(device, probe=False)}
        if missing - {group_id for group_id, _ in link.introduction}:
            peer.synced = -1

    # --- invitations (the inviter's side) --------------------------------------

    def _welcome(
        self,
        request: int,
        record: DeviceRecord,
        record_bytes: bytes,
        proposed: str | None,
        out: list[Effect],
    ) -> tuple[Group, bool]:
        """The code is proven: add the device (persisted first); (the group to send,
        whether the device was a member already).

        A device that is a member already is not added again, and the
        invitation is not used up (`InviteLink`): both sides report
        `already_member`, and the code still works for the device it was
        meant for. (Such a device may have held the group all along, or an
        earlier pairing wrote its add and the welcome never arrived: the log
        it is sent now brings it the group either way.)
        """
        open_ = self.invitations[request]
        group = self._group_by_id(open_.invitation.group_id)
        if record.device_id.raw in group.state.members:
            return group, True
        role = open_.invitation.role
        group.add(record_bytes, "admin" if role == "admin" else "member", int(self.now), self.rng)
        device = record.device_id.raw
        if open_.person is not None:
            self._place(group, device, open_.person, strict=False, proposal=False)
        elif not self._place(group, device, _plain_name(proposed), strict=False, proposal=True):
            open_.unfollowed = _plain_name(proposed)
        self.persist({group.id}, out)
        return group, False

    def _place(
        self, group: Group, device: bytes, name: str | None, *, strict: bool, proposal: bool
    ) -> bool:
        """Place a member in the person named `name`; whether it is that person's now.

        An admin's choice (`proposal` False) places it with the named person
        the group has, or a new one. A device's own proposal only ever makes
        a new person (review of people, 3: a joiner proposing "Dad" would
        else get Dad's veto, and one share too many). A name a person or a
        device of the group has, or much like it, makes no new person
        (`roster.check_new_person_name`), nor does another device's own
        (unnamed) person take a device in. `strict`: refuse in one line;
        else leave the device a person of its own.
        """
        if name is None:
            return False
        state = group.state
        try:
            person = roster.find_person(state, name)
            if person is not None and state.person(device) == person:
                return True  # (already: its own, named after the device, say)
            if person is not None and proposal:
                raise NotAllowed(f"a proposal names only a new person, and {name!r} is one")
            if person is not None and not roster.is_named(state, person):
                raise NotAllowed(
                    f"{name!r} is a device of its own, not a named person: name its person"
                    f" first (`covey person set {roster.command_arg(name)} NAME -g"
                    f" {roster.command_arg(state.name)}`)"
                )
            if person is None:
                roster.check_new_person_name(state, name)
        except UsageError:
            if strict:
                raise
            return False
        group.set_person(device, person or self.rng(PERSON_BYTES), name, int(self.now))
        return True

    def _invited(self, link: InviteLink, out: list[Effect]) -> None:
        request = link.request
        open_ = self.invitations.get(request) if request is not None else None
        if request is None or open_ is None or link.joined is None:
            return
        record, words, already = link.joined
        group = self._group_by_id(open_.invitation.group_id)
        state = group.state
        document = {
            "event": "already_member" if already else "joined",
            "device": record.name,
            "device_id": str(record.device_id),
            "person": roster.person_label(state, record.device_id.raw)
            if record.device_id.raw in state.members
            else None,
            "proposed_person": open_.unfollowed,
            "pairing_words": words,
            "group": group.state.name,
            "group_id": group.id.hex(),
        }
        if already:  # nothing spent: the invitation stays open for another device
            out.append(io.Reply(request, document, final=False))
            return
        del self.invitations[request]
        self._leave_relays_after(request)
        out.append(io.Withdraw(open_.advert))
        out.append(io.Reply(request, document))

    def _invite_attempt_failed(self, link: InviteLink, exc: Exception, out: list[Effect]) -> None:
        request = link.request
        open_ = self.invitations.get(request) if request is not None else None
        if request is None or open_ is None or not link.wrong_code:
            # Only a wrong code spends an attempt: a connection that stalled
            # or broke before message 3 let nobody test a guess, and one
            # that failed after the code checked knew the code.
            return
        invitation = open_.invitation
        out.append(
            io.Reply(
                request,
                {
                    "event": "attempt_failed",
                    "reason": str(exc),
                    "attempts_left": invitation.attempts_left,
                },
                final=False,
            )
        )
        if invitation.attempts_left <= 0:
            self._end_invitation(
                request, NotAllowed("the invitation was destroyed after 3 wrong codes"), out
            )

    def _end_invitation(self, request: int, error: CoveyError, out: list[Effect]) -> None:
        open_ = self.invitations.pop(request, None)
        if open_ is None:
            return
        out.append(io.Withdraw(open_.advert))
        for link in [x for x in self.links.values() if x.request == request]:
            self._forget(link, failed=True)
            out.append(io.Close(link.conn))
        out.append(_error_reply(request, error))

    # --- joining (the joiner's side) -------------------------------------------

    def _joining_of(self, link: Link) -> Joining | None:
        for joining in self.joins.values():
            if joining.link == link.conn:
                return joining
        return None

    def _advance_joins(self, out: list[Effect]) -> None:
        for request, joining in list(self.joins.items()):
            if joining.link is not None and self.now >= joining.deadline:
                # Its time is up with an attempt still under way: that attempt
                # ends too (else the join waited for the link's own deadline,
                # and the simulator never woke for it: review finding).
                attempt = self.links.get(joining.link)
                if attempt is not None:
                    self._forget(attempt, failed=True)
                    out.append(io.Close(attempt.conn))
                joining.link = None
            if joining.link is not None:
                continue
            if self.now >= joining.deadline:
                del self.joins[request]
                self._leave_rendezvous(joining, out)
                if joining.last_error is not None:
                    error = HandshakeFailed(f"pairing failed: {joining.last_error}")
                else:
                    error = HandshakeFailed("no inviting device with that code on this network")
                out.append(_error_reply(request, error))
                continue
            if joining.relay is not None:
                self._join_through_relay(joining, out)
                continue
            target: tuple[tuple[str, ...], int] | None = None
            if joining.address is not None:
                target = ((joining.address[0],), joining.address[1])
                joining.address = None
            else:
                while joining.candidates:
                    name = joining.candidates.pop(0)
                    advert = self.adverts.get(name)
                    if advert is not None and name not in joining.tried:
                        joining.tried.add(name)
                        target = (advert.addresses, advert.port)
                        break
            if target is None:
                continue
            conn = self._dial(target[0], target[1], out)
            if joining.approving is not None:
                self.links[conn] = asking.ApproveLink(
                    self.me,
                    joining.secret,
                    partial(self._decide, request),
                    partial(self._ended, request),
                    conn,
                    "",
                    self.now,
                    self.rng,
                )
            else:
                self.links[conn] = JoinLink(
                    self.me, joining.secret, conn, "", self.now, self.rng, self.config.person
                )
            joining.link = conn

    def _join_attempt_failed(self, link: JoinLink, exc: Exception, out: list[Effect]) -> None:
        request = next((r for r, j in self.joins.items() if j.link == link.conn), None)
        if request is None:
            return
        joining = self.joins[request]
        joining.link = None
        joining.last_error = str(exc)
        if not isinstance(exc, InvalidInput) or not link.joiner.guessed:
            return  # whoever answered could not test a guess at the code: no attempt spent
        # Each handshake lets whoever answered test one guess at the code:
        # stop after as many as an inviter allows.
        joining.attempts += 1
        if joining.attempts >= JOIN_ATTEMPTS:
            self._leave_rendezvous(self.joins.pop(request), out)
            out.append(_error_reply(request, HandshakeFailed(f"pairing failed: {exc}")))
            return
        # After a failure, wait only briefly for another device to try.
        joining.deadline = min(joining.deadline, self.now + RETRY_GRACE)

    def _joined(self, link: JoinLink, out: list[Effect]) -> None:
        request = next((r for r, j in self.joins.items() if j.link == link.conn), None)
        if request is None or link.joined is None:
            return
        joining = self.joins.pop(request)
        meeting = self.links.get(joining.rendezvous) if joining.rendezvous is not None else None
        if isinstance(meeting, Rendezvous):
            meeting.closing = True  # (after the end of the session is put)
        welcome, words = link.joined
        group, inviter = welcome.group, welcome.inviter
        existing = self.groups.get(group.id)
        if existing is None and any(
            g.log.state is not None and g.state.name == group.state.name
            for g in self.groups.values()
        ):
            out.append(
                _error_reply(
                    request,
                    GroupExists(
                        f"a group named {group.state.name!r} already exists on this device"
                    ),
                )
            )
            return
        had_group = existing is not None
        if existing is not None:
            new = [op for op in group.log.order if op.id not in existing.log]
            for op in new:
                existing.receive(op.raw)
            if new or not group.keys.keys() <= existing.keys.keys():
                existing.keys.update(group.keys)
                self.persist({group.id}, out)
            group = existing
        else:
            self.groups[group.id] = group
            out.append(io.Persist(created=(group.id,)))
            self.generation += 1
        out.append(
            io.Reply(
                request,
                {
                    # (as the inviter decided, and reported on its side too)
                    "event": "already_member" if welcome.already else "joined",
                    "group": group.state.name,
                    "group_id": group.id.hex(),
                    "inviter": inviter,
                    "pairing_words": words,
                    # (a member that did not hold the group: an earlier pairing
                    # added it, and its welcome never came)
                    "had_group": had_group,
                },
            )
        )

    # --- commands ---------------------------------------------------------------

    def find_group(self, name: str) -> Group:
        """A group by name, or by a hex prefix of its ID (8 digits or more)."""
        for group in self.groups.values():
            if group.log.state is not None and group.state.name == name:
                return group
        if len(name) >= 8:
            matches = [g for g in self.groups.values() if g.id.hex().startswith(name.lower())]
            if len(matches) == 1:
                return matches[0]
        raise NoSuchGroup(f"there is no group {name!r} on this device")

    def _group_by_id(self, group_id: bytes) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise NoSuchGroup()
        return group

    def _member_group(self, name: str) -> Group:
        """A group by name that this device is a member of (else why not, in one line)."""
        group = self.find_group(name)
        if group.log.state is not None and self.me.device_id.raw not in group.state.members:
            raise NotAMember(roster.removed_message(group.log, self.me.device_id.raw))
        return group

    def _forget_group(self, group_id: bytes, out: list[Effect]) -> None:
        """Drop a group from memory (shredded, or left and delivered); end what waits on it."""
        for open_request, open_ in list(self.invitations.items()):
            if open_.invitation.group_id == group_id:
                self._end_invitation(open_request, NotAllowed("the group was shredded"), out)
        for waiting, telling in list(self.tellings.items()):
            if telling.group == group_id:
                del self.tellings[waiting]
                out.append(self._told(waiting, telling))
        self.groups.pop(group_id, None)
        self._heal_since.pop(group_id, None)
        self._history_tried.pop(group_id, None)
        self.leaving.pop(group_id, None)
        self._removal.pop(group_id, None)
        self._removed.pop(group_id, None)
        self._removal_reported.discard(group_id)
        self._claims_announced = {k for k in self._claims_announced if k[0] != group_id}
        self._claims_retry.pop(group_id, None)
        for key in [k for k in self._claims_ready if k[0] == group_id]:
            del self._claims_ready[key]

    def _leave(self, request: int, name: str, out: list[Effect]) -> None:
        """Sign this device's removal, erase its keys (one transaction), then tell a member.

        The leave's op is stored before the keys go, in the same `Persist`;
        the group's ops stay (and the node keeps dialing the remaining
        members) until one of them has synced since (`_heard`), then the
        group is deleted here.
        """
        me = self.me.device_id.raw
        group = self.find_group(name)
        roster.check_leave(group.log, me)
        others = [d for d in group.state.by_seniority() if d != me]
        for open_request, open_ in list(self.invitations.items()):
            if open_.invitation.group_id == group.id:
                self._end_invitation(open_request, NotAllowed("this device left the group"), out)
        group.remove(me, int(self.now), self.rng)
        group.shred()
        out.append(io.Persist(groups=(group.id,), erased=(group.id,)))
        self.generation += 1
        self.leaving[group.id] = self.generation
        document = {"group": group.state.name, "group_id": group.id.hex(), "left": True}
        self._tell(request, group, document, out, pending=others, leave=True)

    # --- telling the members of a change ---------------------------------------------

    def _tell(
        self,
        request: int,
        group: Group,
        document: dict[str, object],
        out: list[Effect],
        *,
        pending: list[bytes] | None = None,
        leave: bool = False,
    ) -> None:
        """Reply once the members online heard of the change just persisted (or at TELL_WAIT)."""
        me = self.me.device_id.raw
        if pending is None:
            pending = [d for d in group.state.by_seniority() if d != me]
        labels = dict(zip(pending, roster.names(group.state, pending), strict=True))
        telling = Telling(
            group.id, self.generation, self.now + TELL_WAIT, document, set(pending), labels
        )
        telling.leave = leave
        if self.config.serve and len(self.tellings) < MAX_TELLINGS and self._reachable(telling):
            self.tellings[request] = telling
        else:
            out.append(self._told(request, telling))

    def _reachable(self, telling: Telling) -> bool:
        """Whether a device still to hear of it may sync soon: a connection with it
        is under way, or an advert of it is up. (A member that hears of a change
        replaces its advert; the sync that told it is still finishing then.)"""
        connected = {link.dials_for for link in self.links.values()}
        connected |= {_proven_device(link) for link in self.links.values()}
        for device in telling.pending:
            if device in connected:
                return True
            peer = self.peers.get(device)
            if peer is not None and any(name in self.adverts for name in peer.adverts):
                return True
        return False

    def _told(self, request: int, telling: Telling) -> io.Reply:
        order = list(telling.labels)
        data = {
            **telling.document,
            "told": [telling.labels[d] for d in telling.told],
            "to_tell": [telling.labels[d] for d in order if d in telling.pending],
            "syncing": self.config.serve,
        }
        if telling.leave:
            data["delivered"] = bool(telling.told)
        return io.Reply(request, data)

    def _heard(self, device: bytes, generation: int, out: list[Effect]) -> None:
        """A sync with `device` that started at `generation` finished: what it delivered."""
        for request, telling in list(self.tellings.items()):
            if device in telling.pending and generation >= telling.since:
                telling.pending.discard(device)
                telling.told.append(device)
                if not telling.pending or telling.leave:
                    del self.tellings[request]
                    out.append(self._told(request, telling))
        for group_id, since in list(self.leaving.items()):
            group = self.groups.get(group_id)
            if group is None or generation < since or device not in group.state.members:
                continue
            # A remaining member has the leave: it spreads it. Nothing of the
            # group need stay here (the log still held wraps for this device).
            name = group.state.name
            for telling in self.tellings.values():
                if telling.group == group_id and device not in telling.told:
                    telling.pending.discard(device)
                    telling.told.append(device)
            out.append(io.Persist(shredded=(group_id,)))
            self.generation += 1
            self._forget_group(group_id, out)
            told = group.state.devices[device].name
            out.append(io.Notify("left", {"group": name, "told": told}))

    def _advance_tellings(self, out: list[Effect]) -> None:
        for request, telling in list(self.tellings.items()):
            if self.now >= telling.deadline or not self._reachable(telling):
                del self.tellings[request]
                out.append(self._told(request, telling))

    def _command(self, event: io.Command, out: list[Effect]) -> None:
        try:
            self._run(event.request, event.action, out)
        except CoveyError as exc:
            out.append(_error_reply(event.request, exc))

    def _run(self, request: int, action: io.Action, out: list[Effect]) -> None:
        now = int(self.now)
        me = self.me.device_id.raw
        match action:
            case io.CreateGroup(name, history):
                name = validate_name(name, "a group name")
                if any(
                    g.log.state is not None and g.state.name == name for g in self.groups.values()
                ):
                    raise GroupExists(f"a group named {name!r} already exists on this device")
                group = Group.create(self.me, name, history, now, self.rng)
                self._place(group, me, self.config.person, strict=False, proposal=True)
                self.groups[group.id] = group
                out.append(io.Persist(created=(group.id,)))
                self.generation += 1
                out.append(io.Reply(request, describe(group)))
            case io.Rotate(name):
                group = self._member_group(name)
                group.rotate(now, self.rng)
                self.persist({group.id}, out)
                out.append(io.Reply(request, describe(group)))
            case io.Heal(name):
                group = self._member_group(name)
                healed = group.heal(now, self.rng) is not None
                if healed:
                    self.persist({group.id}, out)
                out.append(io.Reply(request, {**describe(group), "rotated": healed}))
            case io.RemoveDevice(name, device):
                group = self.find_group(name)
                roster.check_remove(group.log, me, device)
                group.remove(device, now, self.rng)
                self.persist({group.id}, out)
                removed = roster.names(group.state, [device])[0]
                self._tell(request, group, {**describe(group), "removed": removed}, out)
            case io.ChangeRole(name, device, role):
                group = self.find_group(name)
                roster.check_role(group.log, me, device, role)
                group.set_role(device, role, now)
                self.persist({group.id}, out)
                changed = {**roster.names(group.state, [device])[0], "role": role}
                self._tell(request, group, {**describe(group), "changed": changed}, out)
            case io.AddRelay(name, text):
                group = self.find_group(name)
                link = relaylink.parse_link(text)
                relay = AddRelay(link.key, link.host, link.port, link.access)
                roster.check_add_relay(group.log, me, relay)
                group.add_relay(link.key, link.host, link.port, link.access, now)
                self.persist({group.id}, out)
                self._announce_inboxes(group, out)
                added = views.relay_view(group.state.named_relays[link.key])
                self._tell(request, group, {**describe(group), "relay": added}, out)
            case io.RemoveRelay(name, key):
                group = self.find_group(name)
                roster.check_remove_relay(group.log, me, key)
                gone = group.state.named_relays[key]
                group.remove_relay(key, now)
                self.persist({group.id}, out)
                removed = views.relay_view(gone)
                self._tell(request, group, {**describe(group), "relay": removed}, out)
            case io.Leave(name):
                self._leave(request, name, out)
            case io.Shred(name):
                group = self.find_group(name)
                self._forget_group(group.id, out)
                out.append(io.Persist(shredded=(group.id,)))
                self.generation += 1
                out.append(io.Reply(request, {"group_id": group.id.hex()}))
            case io.Invite(name, role, lifetime, person):
                self._invite(request, name, role, lifetime, person, out)
            case io.SetupRecovery(name, threshold, paper, holders, veto):
                self._setup_recovery(request, name, threshold, paper, holders, veto, out)
            case io.AskHolders(name, person, lifetime, words):
                self._ask(request, name, person, lifetime, words, out)
            case io.ApproveRequest(code, device, timeout):
                if not (math.isfinite(timeout) and 1 <= timeout <= MAX_JOIN_WAIT):
                    raise InvalidArgument("an approval looks for the device from 1 s to an hour")
                if len(self.invitations) + len(self.joins) >= MAX_INVITATIONS:
                    raise NotAllowed("too many pairings are under way on this device")
                joining = Joining(pairing.parse_code(code), self.now + timeout, None)
                joining.approving = Approving(device)
                self.joins[request] = joining
                self._seen_before(joining)
            case io.VetoClaim(name, text):
                group = self._member_group(name)
                claim = roster.resolve_claim(group.state, me, text)
                group.veto(claim, now)
                self.persist({group.id}, out)
                vetoed = views.claim_view(group, group.state.claims[claim])
                self._tell(request, group, {**describe(group), "vetoed": vetoed}, out)
            case io.PlacePerson(name, device, person):
                group = self.find_group(name)
                person = validate_name(person, "a person's name")
                roster.check_place_person(group.log, me, device, person)
                self._place(group, device, person, strict=True, proposal=False)
                self.persist({group.id}, out)
                placed = {**roster.names(group.state, [device])[0], "person": person}
                self._tell(request, group, {**describe(group), "placed": placed}, out)
            case io.RenamePerson(name, person, new):
                group = self.find_group(name)
                new = validate_name(new, "a person's name")
                found = roster.find_person(group.state, person)
                if found is None:
                    raise NoSuchPerson(
                        f"nobody in {group.state.name!r} is named {person!r}:"
                        f" `covey devices -g {roster.command_arg(group.state.name)}` lists people"
                    )
                if roster.find_person(group.state, new) is not None:
                    raise NotAllowed(f"someone in {group.state.name!r} is named {new!r} already")
                roster.check_new_person_name(group.state, new, renamed=found)
                device = group.state.people[found][0]
                roster.check_place_person(group.log, me, device, new)
                group.set_person(device, found, new, now)
                self.persist({group.id}, out)
                renamed = {"person": person, "name": new}
                self._tell(request, group, {**describe(group), "renamed": renamed}, out)
            case io.Join(code, link, address, timeout, relay):
                self._join(request, code, link, address, timeout, relay)

    # --- asking holders, and approving (PROTOCOL.md 19.2) ---------------------------

    def _ask(
        self,
        request: int,
        name: str,
        person: str | None,
        lifetime: int,
        words: tuple[str, ...],
        out: list[Effect],
    ) -> None:
        """Show a code for holders to approve this device by, and wait for them."""
        if not MIN_INVITATION <= lifetime <= MAX_INVITATION:
            raise InvalidArgument("a request stays open from 10 seconds to 24 hours")
        name = validate_name(name, "a group name")
        if person is not None:
            person = validate_name(person, "a person's name")
        if words and person is None:
            raise InvalidArgument("paper shares recover a person: name the person")
        paper = [
            shares.parse_words(text, label=f"the {ordinal(i)} words given")
            for i, text in enumerate(words, start=1)
        ]
        if any(g.log.state is not None and g.state.name == name for g in self.groups.values()):
            raise GroupExists(f"this device holds a group named {name!r} already")
        if len(self.invitations) + len(self.joins) >= MAX_INVITATIONS:
            raise NotAllowed("too many pairings are under way on this device")
        secret = pairing.new_secret(self.rng)
        invitation = pairing.Invitation(bytes(32), "member", secret, int(self.now) + lifetime)
        advert = self.rng(16).hex()
        kind = "admit" if person is None else "recover"
        self.invitations[request] = OpenInvitation(
            invitation, advert, asking=Asking(asking.Ask(kind, name, person), paper)
        )
        self._own(advert)
        out.append(io.Advertise(advert, discovery.padded_advert(secret.advert_tags, self.rng)))
        out.append(
            io.Reply(
                request,
                {
                    "event": "asking",
                    "code": secret.code,
                    "kind": kind,
                    "group": name,
                    "person": person,
                    "device": self.me.record.name,
                    "device_id": str(self.me.device_id),
                    "safety_words": self.me.record.safety_words,
                    "expires": invitation.expires,
                    "paper": len(paper),
                },
                final=False,
            )
        )

    def _asked(
        self, request: int, holder: DeviceRecord, answer: asking.Answer, out: list[Effect]
    ) -> bytes:
        """A holder answered this device's request: check what it sent; claim once K
        shares are here (a recovery), or once a holder claimed (an admission)."""
        open_ = self.invitations.get(request)
        if open_ is None or open_.asking is None:
            raise HandshakeFailed("the request is over")
        state = open_.asking
        ask = state.ask
        if not answer.approved:
            out.append(io.Reply(request, {"event": "looked", "holder": holder.name}, final=False))
            return b""
        replica = Group.replica(self.me, answer.group_id, answer.ops)
        if replica.log.state is None or replica.state.name != ask.group:
            raise PeerRefused("the holder sent another group's log")
        dealing = replica.state.dealing
        if dealing is None or dealing.void is not None:
            raise PeerRefused("the group has no usable recovery shares")
        person = None if ask.person is None else roster.find_person(replica.state, ask.person)
        if ask.kind == "recover" and person is None:
            raise PeerRefused(f"nobody in {ask.group!r} is named {ask.person!r}")
        if state.replica is not None and state.replica.id == replica.id:
            for op in state.replica.log.order:  # (what earlier holders sent, kept)
                with contextlib.suppress(CoveyError):
                    replica.receive(op.raw)
        state.replica = replica
        mine = request_id(self.me.record_bytes, ask.kind, person)
        approvals = replica.state.approvals.get((dealing.id, mine), {})
        if holder.name not in state.approvers:
            state.approvers.append(holder.name)
        digests = {slot.index: slot.digest for slot in dealing.deal.slots}
        if ask.kind == "recover":
            share = shares.parse_words(answer.share, label=f"{holder.name}'s share")
            if not crypto.equal(
                shares.share_digest(dealing.deal.nonce, share), digests.get(share.member_index, b"")
            ):
                raise PeerRefused(f"{holder.name}'s share is not the one dealt")
            state.released[share.member_index] = share
            have = list(state.released.values()) + state.paper
            if len(have) >= dealing.deal.threshold:
                secret = shares.combine(
                    have,
                    nonce=dealing.deal.nonce,
                    digests=digests,
                    threshold=dealing.deal.threshold,
                )
                recovery = escrow.recovery_identity(
                    secret, dealing.deal.nonce, dealing.deal.record.created
                )
                assert person is not None
                claim = replica.claim_recovery(
                    recovery,
                    self.me.record_bytes,
                    person,
                    approvals.values(),
                    [s.member_index for s in state.paper],
                    int(self.now),
                )
                self._claimed(request, replica, claim.id, out)
                return claim.raw
        elif any(
            c.claim.request == mine and c.status == "pending" for c in replica.state.claims.values()
        ):
            claim_id = next(c.id for c in replica.state.claims.values() if c.claim.request == mine)
            self._claimed(request, replica, claim_id, out)
            return b""
        out.append(
            io.Reply(
                request,
                {
                    "event": "approved",
                    "holder": holder.name,
                    "approvers": list(state.approvers),
                    "shares": len(state.released) + len(state.paper),
                    "threshold": dealing.deal.threshold,
                },
                final=False,
            )
        )
        return b""

    def _forwarded(self, request: int) -> list[bytes]:
        """The ops earlier holders sent this request, for the next holder."""
        open_ = self.invitations.get(request)
        if open_ is None or open_.asking is None or open_.asking.replica is None:
            return []
        return [op.raw for op in open_.asking.replica.log.order]

    def _claimed(self, request: int, replica: Group, claim: bytes, out: list[Effect]) -> None:
        """This device's request is claimed in the group's log: keep the group (this
        device is no member until a member completes it) and end the request."""
        open_ = self.invitations.pop(request)
        out.append(io.Withdraw(open_.advert))
        self.groups[replica.id] = replica
        out.append(io.Persist(created=(replica.id,)))
        self.generation += 1
        found = replica.state.claims[claim]
        # Said once this session's last message is out (`_finish`): a command's
        # own node ends at its final reply, and the holder would see the
        # connection cut before the end.
        self._claimed_replies[request] = io.Reply(
            request, {"event": "claimed", **views.claim_view(replica, found)}
        )

    def _decide(
        self,
        request: int,
        asker: DeviceRecord,
        raw: bytes,
        ask: asking.Ask,
        out: list[Effect],
    ) -> asking.Answer:
        """A holder's node: what to answer an asking device (and the ops it writes)."""
        joining = self.joins.get(request)
        if joining is None or joining.approving is None:
            raise HandshakeFailed("the approval is over")
        spec = joining.approving
        group = self._member_group(ask.group)
        before = len(group.log)
        for raw_op in ask.ops:  # (other holders' approvals, through the asking device)
            with contextlib.suppress(CoveyError):
                group.receive(raw_op)
        if len(group.log) != before:
            self.persist({group.id}, out)
        state = group.state
        person = None
        if ask.person is not None:
            person = roster.find_person(state, ask.person)
            if person is None:
                raise PeerRefused(f"nobody in {ask.group!r} is named {ask.person!r}")
        spec.document = {
            "event": "looked",
            "group": state.name,
            "kind": ask.kind,
            "person": ask.person,
            "device": asker.name,
            "device_id": str(asker.device_id),
            "safety_words": asker.safety_words,
        }
        if spec.device == "" or spec.device not in ("*", str(asker.device_id)):
            if spec.device not in ("", "*"):
                spec.document["event"] = "other_device"
            return asking.Answer(False, [], "", group.id)
        dealing = state.dealing
        share = ""
        claimed = False
        try:
            if dealing is None:
                raise NotAllowed(f"{state.name!r} has no recovery shares")
            mine = request_id(raw, ask.kind, person)
            now = int(self.now)
            group.approve(mine, ask.kind, person, now)  # type: ignore[arg-type]
            if ask.kind == "recover":
                share = escrow.open_share(group.state, dealing, self.me).mnemonic()
            else:
                approvals = group.state.approvals.get((dealing.id, mine), {})
                if len(approvals) >= dealing.deal.threshold:
                    group.claim_admission(raw, approvals.values(), now)
                    claimed = True
        except UsageError as exc:  # (the rules refuse: said to this command, not a failure)
            spec.error = exc
            return asking.Answer(False, [], "", group.id)
        self.persist({group.id}, out)
        spec.document["event"] = "approved"
        spec.document["claimed"] = claimed
        return asking.Answer(True, [op.raw for op in group.log.order], share, group.id)

    def _ended(self, request: int, claim: bytes, out: list[Effect]) -> None:
        """The asking device's last word: the recovery claim it signed, if any."""
        joining = self.joins.get(request)
        if not claim or joining is None or joining.approving is None:
            return
        group = self.find_group(str(joining.approving.document.get("group", "")))
        received = group.receive(claim)
        if received.outcome == "applied":
            self.persist({group.id}, out)
            joining.approving.document["claimed"] = True

    def _approved(self, link: asking.ApproveLink, out: list[Effect]) -> None:
        request = next((r for r, j in self.joins.items() if j.link == link.conn), None)
        if request is None:
            return
        joining = self.joins.pop(request)
        assert joining.approving is not None
        if joining.approving.error is not None:
            out.append(_error_reply(request, joining.approving.error))
            return
        out.append(io.Reply(request, dict(joining.approving.document)))

    def _setup_recovery(
        self,
        request: int,
        name: str,
        threshold: int,
        paper: int,
        holders: tuple[str, ...],
        veto: int,
        out: list[Effect],
    ) -> None:
        """Deal shares, write the deal op, and reply with the paper words (once)."""
        group = self.find_group(name)
        roster.check_deal(group.log, self.me.device_id.raw)
        if not MIN_VETO <= veto <= MAX_VETO:
            raise InvalidArgument("a veto window is from a minute to 30 days")
        if self.config.dealer is None:
            raise NotAllowed("this covey cannot deal recovery shares")
        state = group.state
        persons = [roster.resolve_holder(state, text) for text in holders] or None
        planned = escrow.plan(state, threshold, paper, veto, persons)
        now = int(self.now)
        body, paper_shares = escrow.deal_body(
            group.id, self.config.dealer(threshold, planned.count), planned, now, self.rng
        )
        op = group.deal(body, now)
        self.persist({group.id}, out)
        document = {
            **describe(group),
            "dealing": roster.describe_dealing(group.log, self.me.device_id.raw)["dealing"],
            "paper_shares": [
                {"slot": share.member_index + 1, "words": share.words()} for share in paper_shares
            ],
        }
        del paper_shares
        assert document["dealing"]["id"] == op.id.hex()
        self._tell(request, group, document, out)

    def _invite(
        self,
        request: int,
        name: str,
        role: str,
        lifetime: int,
        person: str | None,
        out: list[Effect],
    ) -> None:
        if person is not None:
            person = validate_name(person, "a person's name")
        if not MIN_INVITATION <= lifetime <= MAX_INVITATION:
            raise InvalidArgument("an invitation lasts from 10 seconds to 24 hours")
        if role not in ("admin", "member"):
            raise InvalidArgument("a role is admin or member")
        group = self.find_group(name)
        roster.check_invite(group.log, self.me.device_id.raw)
        if len(self.invitations) + len(self.joins) >= MAX_INVITATIONS:
            raise NotAllowed("too many invitations are open on this device")
        secret = pairing.new_secret(self.rng)
        invitation = pairing.Invitation(group.id, role, secret, int(self.now) + lifetime)
        advert = self.rng(16).hex()
        if person is not None:
            found = roster.find_person(group.state, person)  # (refuses a name two people have)
            if found is None:
                roster.check_new_person_name(group.state, person)
            elif not roster.is_named(group.state, found):
                raise NotAllowed(
                    f"{person!r} is a device of its own, not a named person: name its person"
                    f" first (`covey person set {roster.command_arg(person)} NAME -g"
                    f" {roster.command_arg(group.state.name)}`)"
                )
        self.invitations[request] = OpenInvitation(invitation, advert, person)
        self._own(advert)
        out.append(io.Advertise(advert, discovery.padded_advert(secret.advert_tags, self.rng)))
        self.invitations[request].relays = list(group.state.relays.values())[:PAIR_RELAYS]
        self._wait_at_relays(request, out)
        links = [
            str(relaylink.RelayLink(r.host, r.port, r.key, r.access))
            for r in self.invitations[request].relays
        ]
        out.append(
            io.Reply(
                request,
                {
                    "event": "invitation",
                    "code": secret.code,
                    "link": pairing.with_relays(secret.as_link(), links),
                    "expires": invitation.expires,
                    "group": group.state.name,
                    "group_id": group.id.hex(),
                    "role": role,
                    "relays": links,
                },
                final=False,
            )
        )

    def _join(
        self,
        request: int,
        code: str | None,
        link: str | None,
        address: tuple[str, int] | None,
        timeout: float,
        relay: str | None = None,
    ) -> None:
        if (code is None) == (link is None):
            raise InvalidArgument("give either a code or a link")
        if not (math.isfinite(timeout) and 1 <= timeout <= MAX_JOIN_WAIT):
            raise InvalidArgument("a join looks for its inviter from 1 second to an hour")
        if address is not None and not 0 < address[1] < 65536:
            raise InvalidArgument("a port is from 1 to 65535")
        if len(self.invitations) + len(self.joins) >= MAX_INVITATIONS:
            raise NotAllowed("too many pairings are under way on this device")
        secret = pairing.parse_code(code) if code is not None else pairing.parse_link(link or "")
        joining = Joining(secret, self.now + timeout, address)
        if relay is None and link is not None and address is None:
            relay = next(iter(pairing.link_relays(link)), None)  # (the link names them)
        if relay is not None:
            meet = relaylink.parse_link(relay)
            joining.relay = AddRelay(meet.key, meet.host, meet.port, meet.access)
        self.joins[request] = joining
        self._seen_before(joining)

    def _seen_before(self, joining: Joining) -> None:
        """Adverts already seen with the code's tag are candidates at once: strangers'
        (`others`), and those an earlier pairing with the same code wanted (a
        holder's approve after its look: mDNS says an advert once, not per command)."""
        tag = joining.secret.tag
        for seen in list(self.others.values()):
            text = discovery.read_advert(seen.txt)
            if text is not None and tag in text.tags:
                self._advert_seen(seen)
        for name, advert in list(self.adverts.items()):
            text = None if advert.device is not None else discovery.read_advert(advert.txt)
            if text is not None and tag in text.tags and name not in joining.candidates:
                joining.candidates.append(name)
                del joining.candidates[:-MAX_ADVERTS]

    def _cancel(self, request: int, out: list[Effect]) -> None:
        self.tellings.pop(request, None)
        if request in self.invitations:
            self._end_invitation(request, UsageError("cancelled"), out)
        joining = self.joins.pop(request, None)
        if joining is not None:
            for conn in (joining.link, joining.rendezvous):
                link = self.links.get(conn) if conn is not None else None
                if link is not None:
                    self._forget(link, failed=True)
                    out.append(io.Close(link.conn))

    # --- the schedule -------------------------------------------------------------

    def _housekeeping(self, out: list[Effect]) -> None:
        for link in [x for x in self.links.values() if x.deadline() <= self.now]:
            if isinstance(link, (InviteLink, JoinLink)):
                self._failed(link, HandshakeFailed("the other device took too long"), out)
            else:
                self._drop(link, "timed out", out)
        for request, open_ in list(self.invitations.items()):
            if self.now >= open_.invitation.expires:
                self._end_invitation(request, NotAllowed("the invitation expired"), out)
        self._watch_standing(out)
        for group in list(self.groups.values()):
            self._announce_inboxes(group, out)
        self._heal(out)
        self._tend_claims(out)
        self._visit_relays(out)
        for request in list(self.invitations):
            self._wait_at_relays(request, out)
        for meeting in [x for x in self.links.values() if isinstance(x, Rendezvous)]:
            if meeting.due(self.now):
                self._guard(meeting, partial(meeting.poll, self.now, out), out)
        self._refresh_advert(out)
        self._advance_joins(out)
        self._dial_due(out)
        self._probe_due(out)
        self._advance_tellings(out)

    def _announce_inboxes(self, group: Group, out: list[Effect]) -> None:
        """Announce this device's inbox at each of the group's relays it has not yet
        (`set_inbox`: members put items for it there, PROTOCOL.md 18.2)."""
        state = group.log.state
        me = self.me.device_id.raw
        if state is None or me not in state.members or self._is_leaving(group):
            return
        announced = False
        for key in state.relays:
            box = self._my_inboxes.get((group.id, key))
            if box is None:
                box = relayitems.my_inbox(self.me.secrets.signing_seed, group.id, key)
                self._my_inboxes[(group.id, key)] = box
            if state.inbox_of(me, key) != box:
                group.set_inbox(key, box, int(self.now))
                announced = True
        if announced:
            self.persist({group.id}, out)

    def _heal(self, out: list[Effect]) -> None:
        """Rotate a group whose current key is not held by exactly its members.

        The most senior member heals at once; the one ranked k waits
        k x HEAL_DELAY seconds from when it first saw the need, unless a
        healing rotation arrives first (PROTOCOL.md, "Who heals").
        """
        if not self.config.serve:
            return
        for group in self.groups.values():
            if group.log.state is None:
                continue
            rank = self._heal_rank(group)
            if rank is None:
                self._heal_since.pop(group.id, None)
                continue
            since = self._heal_since.setdefault(group.id, self.now)
            if self.now - since < rank * HEAL_DELAY:
                continue
            history_only = not group.state.needs_healing
            gaps = frozenset(group.history_gaps()) if history_only else frozenset()
            tried = self._history_tried.get(group.id)
            if history_only and tried is not None and tried[0] <= gaps and self.now < tried[1]:
                continue  # our last healing rotation left these open: wait, do not storm
            try:
                group.rotate(int(self.now), self.rng)
            except CoveyError as exc:  # this device cannot (it lacks a member's record?)
                out.append(
                    io.Notify("heal_failed", {"group": group.state.name, "reason": str(exc)})
                )
                self._heal_since[group.id] = self.now + HEAL_DELAY
                continue
            self._heal_since.pop(group.id, None)
            if history_only:
                if tried is not None and tried[0] <= gaps:
                    out.append(
                        io.Notify(
                            "heal_failed",
                            {"group": group.state.name, "reason": "a history gap did not close"},
                        )
                    )
                self._history_tried[group.id] = (gaps, self.now + RETRY_MAX)
            self.persist({group.id}, out)
            out.append(io.Notify("healed", {"group": group.state.name}))

    # --- admissions and recoveries (PROTOCOL.md 19.4, 19.5) -------------------------

    def _tend_claims(self, out: list[Effect]) -> None:
        """Announce each pending claim, witness it once its window has passed by
        this device's clock, and complete it once witnessed.

        The window counts from when this device first held the claim, a time
        kept in its store (`Group.claims_held`): a restart does not count it
        again, so a laptop that sleeps every night still sees days pass. The
        most senior member able to complete does so at once, the one ranked
        k after k x HEAL_DELAY (as for healing): concurrent completions are
        harmless (the second is skipped) but waste an epoch.
        """
        if not self.config.serve:
            return
        me = self.me.device_id.raw
        for group in list(self.groups.values()):
            if group.log.state is None or me not in group.state.members:
                continue
            if self._note_claims_held(group):
                out.append(io.Persist(groups=(group.id,)))
            state = group.state
            mine = state.person(me)
            for claim_id, claim in list(state.claims.items()):
                key = (group.id, claim_id)
                if claim.status != "pending":
                    self._claims_announced.discard(key)
                    self._claims_ready.pop(key, None)
                    continue
                if key not in self._claims_announced:
                    self._claims_announced.add(key)
                    out.append(io.Notify("claim_pending", views.claim_view(group, claim)))
                if self.now < self._claims_retry.get(group.id, 0.0):
                    continue
                first = group.claims_held[claim_id]
                eligible = claim.claim.kind == "admit" or mine != claim.claim.person
                if eligible and mine not in claim.witnesses and self.now >= first + claim.window:
                    self._write_claim_op(
                        group, "witness", partial(group.witness, claim_id, int(self.now)), out
                    )
                    claim = group.state.claims[claim_id]
                    if claim.status != "pending" or self.now < self._claims_retry.get(group.id, 0):
                        continue
                rank = self._completer_rank(group, claim)
                if len(claim.witnesses) < membership.witnesses_needed(group.state, claim):
                    continue
                ready = self._claims_ready.setdefault(key, self.now)
                if rank is not None and self.now >= ready + rank * HEAL_DELAY:
                    self._write_claim_op(
                        group,
                        "completed",
                        partial(group.complete, claim_id, int(self.now), self.rng),
                        out,
                    )

    def _note_claims_held(self, group: Group) -> bool:
        """Note when this device first held each of the group's pending claims, and
        forget the claims no longer pending; True if that changed anything."""
        pending = {c for c, claim in group.state.claims.items() if claim.status == "pending"}
        held = group.claims_held
        changed = False
        for claim_id in [c for c in held if c not in pending]:
            del held[claim_id]
            changed = True
        for claim_id in sorted(pending - held.keys()):
            held[claim_id] = math.ceil(self.now)  # (whole seconds, never earlier)
            changed = True
        return changed

    def _completer_rank(self, group: Group, claim: membership.ClaimState) -> int | None:
        """This device's place among the members that may complete `claim` (not of the
        person it replaces), most senior first; None if it may not."""
        state = group.state
        able = [
            d
            for d in state.by_seniority()
            if claim.claim.kind == "admit" or state.person(d) != claim.claim.person
        ]
        me = self.me.device_id.raw
        return able.index(me) if me in able else None

    def _write_claim_op(
        self, group: Group, what: str, write: Callable[[], Op], out: list[Effect]
    ) -> None:
        try:
            op = write()
        except CoveyError as exc:
            out.append(
                io.Notify(
                    "claim_failed",
                    {"group": group.state.name, "step": what, "reason": str(exc)},
                )
            )
            self._claims_retry[group.id] = self.now + RETRY_MAX  # (never a retry storm)
            return
        self.persist({group.id}, out)
        found = group.state.claims.get(getattr(op.body, "claim", b""))
        document = {"group": group.state.name, "step": what}
        if found is not None:
            document.update(views.claim_view(group, found))
        out.append(io.Notify("claim_" + what, document))

    # --- relays (`covey.core.node.relays`) ----------------------------------------

    def _deliver_soon(self, groups: Iterable[bytes]) -> None:
        """Logs changed: members away may lack it; deliver through the relays soon."""
        schedule = self.relay_schedule
        for group_id in groups:
            group = self.groups.get(group_id)
            if group is None or group.log.state is None:
                continue
            for key in group.state.relays:
                schedule.deliver_at.setdefault((group_id, key), self.now + relays.DELIVER_DELAY)
                schedule.mirror_at.setdefault((group_id, key), self.now + relays.DELIVER_DELAY)

    def _believe_synced(self, device: bytes) -> None:
        """A direct sync with `device` ended with nothing changed meanwhile: it holds
        what this device holds of every group it is a member of."""
        for group in self.groups.values():
            if group.log.state is not None and device in group.state.members:
                self.relay_schedule.confirmed[(device, group.id)] = group.log.version_vector()

    def _visit_relays(self, out: list[Effect]) -> None:
        """Start the relay visits that are due (at most MAX_VISITS at once)."""
        if not self.config.serve:
            return
        schedule = self.relay_schedule
        me = self.me.device_id.raw
        slots: list[tuple[Group, AddRelay]] = []
        for group in list(self.groups.values()):
            state = group.log.state
            if state is not None and me in state.members and not self._is_leaving(group):
                slots += [(group, relay) for relay in state.relays.values()]
        live = {(group.id, relay.key) for group, relay in slots}
        for table in (
            schedule.fetch_at,
            schedule.deliver_at,
            schedule.redeliver_at,
            schedule.mirror_at,
        ):
            for slot in [s for s in table if s not in live]:
                del table[slot]  # (the relay, or the group, is gone)
        busy = {v.slot for v in self.links.values() if isinstance(v, Visit)}
        for group, relay in slots:
            slot = (group.id, relay.key)
            if slot not in schedule.fetch_at:
                # A relay new to this node (it started, or the relay was just
                # added): fetch now, and deliver what members may lack, since
                # nothing says what they hold yet.
                schedule.deliver_at.setdefault(slot, self.now + relays.DELIVER_DELAY)
            if schedule.redeliver_at.get(slot, math.inf) <= self.now:
                # Put again what members have not confirmed (a relay may have
                # dropped it, or it may expire): `RelaySchedule.held`.
                schedule.redeliver_at[slot] = self.now + relays.REDELIVER_EVERY
                schedule.deliver_at[slot] = self.now
            fetch = schedule.fetch_at.setdefault(slot, self.now) <= self.now
            if fetch and (*slot, "fetch") not in busy and len(busy) < relays.MAX_VISITS:
                conn = self._dial((relay.host,), relay.port, out)
                fetch_visit = FetchVisit(self, conn, self.now, group.id, relay, self.rng)
                fetch_visit.kept_before = schedule.kept.get(slot, frozenset())
                self.links[conn] = fetch_visit
                schedule.fetch_at[slot] = self.now + self.config.relay_every
                busy.add((*slot, "fetch"))
                schedule.mirror_at[slot] = self.now  # (the mirror is read as often)
            mirror = schedule.mirror_at.get(slot)
            if (
                mirror is not None
                and mirror <= self.now
                and (*slot, "mirror") not in busy
                and len(busy) < relays.MAX_VISITS
            ):
                del schedule.mirror_at[slot]
                refusing = schedule.mirror_refused.setdefault(slot, {})
                for epoch in [e for e, until in refusing.items() if until <= self.now]:
                    del refusing[epoch]
                recent = {e.id for e in group.state.epochs[-relays.MIRROR_BACKLOG :]}
                cursors = schedule.cursors.setdefault(slot, {})
                done = schedule.mirrored.setdefault(slot, {})
                for by_epoch in (cursors, done):  # (epochs long past: forgotten)
                    for epoch in [e for e in by_epoch if e not in recent]:
                        del by_epoch[epoch]
                writes = relays.mirror_writes(
                    group, relay.key, self.me, done, refusing.keys(), self.rng
                )
                conn = self._dial((relay.host,), relay.port, out)
                mirror_visit = MirrorVisit(
                    self, conn, self.now, group.id, relay, self.rng, cursors, writes
                )
                self.links[conn] = mirror_visit
                busy.add((*slot, "mirror"))
            due = schedule.deliver_at.get(slot)
            if due is None or due > self.now or len(busy) >= relays.MAX_VISITS:
                continue
            del schedule.deliver_at[slot]
            held = schedule.held(group, relay.key, self.now)
            for put in puts_for(group, relay.key, self.me, held, self.rng):
                refused = schedule.refused.get((put.member, *slot))
                if refused is not None and refused[1] > self.now:
                    continue  # (left alone for now: it refused every token lately)
                if (*slot, put.member) in busy or len(busy) >= relays.MAX_VISITS:
                    schedule.deliver_at.setdefault(slot, self.now + relays.RETRY_AFTER)
                    continue
                conn = self._dial((relay.host,), relay.port, out)
                visit = DeliverVisit(self, conn, self.now, group.id, relay, self.rng, put)
                self.links[conn] = visit
                busy.add((*slot, put.member))

    # --- pairing through a relay (`covey.core.node.tunnel`) ------------------------

    def _wait_at_relays(self, request: int, out: list[Effect]) -> None:
        """An open invitation waits at each of its relays: dial a rendezvous where it
        has none (at once, or again REDIAL_AFTER a broken one: review finding)."""
        open_ = self.invitations.get(request)
        if open_ is None or not open_.relays or self.now < open_.redial_at:
            return
        secret = open_.invitation.secret
        waiting = {
            x.relay.key
            for x in self.links.values()
            if isinstance(x, Rendezvous) and x.request == request
        }
        for relay in open_.relays:
            if relay.key in waiting:
                continue
            tokens = [
                relayitems.rendezvous_token(relay.key, nameplate=secret.nameplate),
                relayitems.rendezvous_token(relay.key, link_key=secret.link_key),
            ]
            conn = self._dial((relay.host,), relay.port, out)
            meeting = Rendezvous(
                self, conn, self.now, relay, tokens, "i", open_.invitation.expires, self.rng
            )
            meeting.request = request
            self.links[conn] = meeting
            open_.redial_at = self.now + tunnel.REDIAL_AFTER

    def _leave_relays_after(self, request: int) -> None:
        """A used invitation stops waiting at its relays, once what it still has to
        say there (the welcome) is said (review: it polled on until it expired)."""
        for link in self.links.values():
            if isinstance(link, Rendezvous) and link.request == request:
                link.closing = True
                link.request = None

    def _join_through_relay(self, joining: Joining, out: list[Effect]) -> None:
        """Meet the inviter at the relay: open the rendezvous, then an attempt on it."""
        relay = joining.relay
        assert relay is not None
        meeting = self.links.get(joining.rendezvous) if joining.rendezvous is not None else None
        if meeting is None:
            secret = joining.secret
            token = relayitems.rendezvous_token(
                relay.key, nameplate=secret.nameplate, link_key=secret.link_key
            )
            conn = self._dial((relay.host,), relay.port, out)
            meeting = Rendezvous(
                self, conn, self.now, relay, [token], "j", joining.deadline, self.rng
            )
            self.links[conn] = meeting
            joining.rendezvous = conn
            return  # (the attempt starts once the relay proved its key: `tunnel_ready`)
        if isinstance(meeting, Rendezvous) and meeting.proven:
            self._attempt_through(meeting, joining, out)

    def _attempt_through(self, meeting: Rendezvous, joining: Joining, out: list[Effect]) -> None:
        session_id = self.rng(relayitems.SESSION_BYTES)
        meeting.open(session_id)
        conn = self._virtual(meeting, session_id)
        link = JoinLink(
            self.me, joining.secret, conn, meeting.address, self.now, self.rng, self.config.person
        )
        link.handshake_timeout = tunnel.PAIRING_TIMEOUT
        self.links[conn] = link
        joining.link = conn
        link.connected(out)

    def _virtual(self, meeting: Rendezvous, session_id: bytes) -> ConnId:
        conn = self._next_dial
        self._next_dial -= 1
        self.virtual[conn] = (meeting.conn, session_id)
        self.sessions[(meeting.conn, session_id)] = conn
        return conn

    def _leave_rendezvous(self, joining: Joining, out: list[Effect]) -> None:
        meeting = self.links.get(joining.rendezvous) if joining.rendezvous is not None else None
        if meeting is not None:
            self._forget(meeting, failed=False)
            out.append(io.Close(meeting.conn))

    def tunnel_ready(self, rendezvous: Rendezvous, out: list[Effect]) -> None:
        for joining in self.joins.values():
            if joining.rendezvous == rendezvous.conn and joining.link is None:
                self._attempt_through(rendezvous, joining, out)

    def tunnel_opened(self, rendezvous: Rendezvous, session: bytes, out: list[Effect]) -> None:
        conn = self._virtual(rendezvous, session)
        accepted = Accepted(conn, rendezvous.address, self.now)
        accepted.handshake_timeout = tunnel.PAIRING_TIMEOUT
        self.links[conn] = accepted

    def tunnel_data(
        self, rendezvous: Rendezvous, session: bytes, data: bytes, out: list[Effect]
    ) -> None:
        conn = self.sessions.get((rendezvous.conn, session))
        if conn is not None:
            self._received(io.Received(conn, data), out)

    def tunnel_closed(self, rendezvous: Rendezvous, session: bytes, out: list[Effect]) -> None:
        conn = self.sessions.pop((rendezvous.conn, session), None)
        if conn is not None:
            self.virtual.pop(conn, None)
            self._closed(conn, "closed by the peer", out)

    @property
    def saying(self) -> bool:
        """Whether a rendezvous still has something to say before it closes (a
        welcome being put, the end of a session): a command's own node runs on
        until it is said (`covey.runtime.local`; a walkthrough found a one-shot
        `covey invite` that exited with its welcome still queued, so the joiner
        never got it while the inviter reported it joined)."""
        return any(isinstance(x, Rendezvous) and x.closing for x in self.links.values())

    def _leave_settled_meetings(self, out: list[Effect]) -> None:
        """Close a rendezvous that is done once what it had to say was said: after
        the routing of this event's sends (a welcome routed after it closed was
        lost, found by a walkthrough with a link), with no session left on it."""
        carrying = {meeting for meeting, _ in self.virtual.values()}
        for meeting in [x for x in self.links.values() if isinstance(x, Rendezvous)]:
            if (
                meeting.closing
                and meeting.settled
                and meeting.proven
                and meeting.conn not in carrying
            ):
                self._finish(meeting, out)

    def _orphans(self, out: list[Effect]) -> None:
        """Virtual connections whose rendezvous ended end too."""
        for conn, (meeting, session) in list(self.virtual.items()):
            if meeting not in self.links:
                del self.virtual[conn]
                self.sessions.pop((meeting, session), None)
                self._closed(conn, "the relay connection ended", out)

    def _route_virtual(self, out: list[Effect]) -> list[Effect]:
        """Carry what links said on virtual connections through their rendezvous.

        What a rendezvous sends for them goes last: it is encrypted now, after
        everything already said on the rendezvous's own connection (and after
        every Persist before it)."""
        if not self.virtual:
            return out
        routed: list[Effect] = []
        carried: list[Effect] = []
        for effect in out:
            if isinstance(effect, (io.Send, io.Close)) and effect.conn in self.virtual:
                meeting_conn, session = self.virtual[effect.conn]
                meeting = self.links.get(meeting_conn)
                if isinstance(effect, io.Close):
                    del self.virtual[effect.conn]
                    self.sessions.pop((meeting_conn, session), None)
                if not isinstance(meeting, Rendezvous):
                    continue
                if isinstance(effect, io.Send):
                    meeting.send_data(session, effect.data, self.now, carried)
                else:
                    meeting.end(session, self.now, carried)
            else:
                routed.append(effect)
        return routed + carried

    def _heard_through_relay(self, visit: FetchVisit | MirrorVisit, out: list[Effect]) -> None:
        """Record the members whose items a fetch took, as synced through that relay."""
        group = self.groups.get(visit.group_id)
        if group is None or group.log.state is None or not visit.heard_from:
            return
        devices = group.state.devices
        where = relays.via_relay(visit.relay)
        met = tuple(
            io.PeerMet(device, devices[device].name, where, int(self.now))
            for device in sorted(visit.heard_from)
            if device in devices
        )
        out.append(io.Persist(peers=met))

    def _report_visit(self, visit: Visit, out: list[Effect]) -> None:
        """Say what a relay visit did (nothing when it did nothing)."""
        group = self.groups.get(visit.group_id)
        if group is None or group.log.state is None:
            return
        where = relays.via_relay(visit.relay).removeprefix(relays.VIA_RELAY)
        data: dict[str, Any] = {"group": group.state.name, "relay": where}
        if isinstance(visit, (FetchVisit, MirrorVisit)) and (visit.taken or visit.dropped):
            data.update(ops=visit.taken, dropped=visit.dropped)
            out.append(io.Notify("relay_fetched", data))
        elif isinstance(visit, DeliverVisit):
            record = group.state.devices.get(visit.member)
            data.update(to=record.name if record else "?", delivered=visit.delivered)
            out.append(io.Notify("relay_delivered", data))

    def _visit_ended(self, visit: Visit, failed: bool) -> None:
        schedule = self.relay_schedule
        slot = (visit.group_id, visit.relay.key)
        if isinstance(visit, DeliverVisit):
            key = (visit.member, visit.group_id, visit.relay.key)
            if visit.delivered:
                schedule.refused.pop(key, None)
                earlier = schedule.delivered.get(key)
                fresh = earlier is not None and self.now - earlier[1] < relays.REDELIVER_EVERY
                since = earlier[1] if earlier is not None and fresh else self.now
                schedule.delivered[key] = (visit.put.vector, since)
                schedule.redeliver_at.setdefault(slot, self.now + relays.REDELIVER_EVERY)
            else:
                times = schedule.refused.get(key, (0, 0.0))[0] + 1
                wait = min(relays.REDELIVER_EVERY, relays.RETRY_AFTER * 2 ** (times - 1))
                schedule.refused[key] = (times, self.now + wait)
                schedule.deliver_at.setdefault(slot, self.now + wait)
        elif isinstance(visit, FetchVisit):
            if not failed:
                schedule.kept[slot] = frozenset(visit.kept)
            else:
                schedule.fetch_at[slot] = self.now + relays.RETRY_AFTER
        elif isinstance(visit, MirrorVisit):
            # What went in is recorded even when the visit failed later, and a
            # segment that refused is left alone a while (review: one refused
            # put had every op put again every minute, filling the others).
            done = schedule.mirrored.setdefault(slot, {})
            for epoch, upto in visit.written.items():
                done[epoch] = max(done.get(epoch, 0), upto)
            refusing = schedule.mirror_refused.setdefault(slot, {})
            for epoch in visit.refused:
                refusing[epoch] = self.now + relays.REDELIVER_EVERY
            if (
                failed
                and not visit.refused
                and len(visit.written) < len({e for e, _, _ in visit.writes})
            ):
                schedule.mirror_at.setdefault(slot, self.now + relays.RETRY_AFTER)

    @staticmethod
    def _heal_rank(group: Group) -> int | None:
        """This device's healing rank if the group needs a healing rotation, else None.

        Two needs: the current key not held by exactly the members (every
        member ranks by seniority), or a member lacking a key its history
        policy allows (`Group.history_gaps`: the members who hold such a key
        rank among themselves).
        """
        if group.state.needs_healing:
            return group.healer_rank()
        if group.needs_history_heal:
            return group.history_healer_rank()
        return None

    def _claim_times(self) -> list[float]:
        """When a pending claim's window ends, by this device's count (to witness or
        complete), and when a claim step that failed is tried again."""
        times = [t for t in self._claims_retry.values() if t > self.now]
        if not self.config.serve:
            return times
        for group in self.groups.values():
            if group.log.state is None:
                continue
            for claim_id, first in group.claims_held.items():
                claim = group.state.claims.get(claim_id)
                if claim is None or claim.status != "pending":
                    continue
                rank = self._completer_rank(group, claim) or 0
                ready = self._claims_ready.get((group.id, claim_id))
                dues: list[float] = [first + claim.window]
                if ready is not None:
                    dues.append(ready + rank * HEAL_DELAY)
                times += [due for due in dues if due > self.now]
        return times

    def _next_wake(self) -> float | None:
        times = [link.deadline() for link in self.links.values()]
        times += [o.invitation.expires for o in self.invitations.values()]
        times += [j.deadline for j in self.joins.values()]
        times += [t.deadline for t in self.tellings.values()]
        for group_id, since in self._heal_since.items():
            group = self.groups.get(group_id)
            rank = self._heal_rank(group) if group is not None else None
            if rank is not None:
                times.append(since + rank * HEAL_DELAY)
        times += [until for _, until in self._history_tried.values() if until > self.now]
        times += self._claim_times()
        times += [
            x.next_poll
            for x in self.links.values()
            if isinstance(x, Rendezvous) and x.next_poll is not None
        ]
        if self.config.serve:
            # (A due time already past waits for a visit to end: an event too.)
            schedule = self.relay_schedule
            times += [t for t in schedule.fetch_at.values() if t > self.now]
            times += [t for t in schedule.deliver_at.values() if t > self.now]
            times += [t for t in schedule.redeliver_at.values() if t > self.now]
            times += [t for t in schedule.mirror_at.values() if t > self.now]
        if self.config.serve:
            times += [
                peer.retry_at
                for peer in self.peers.values()
                if peer.dialing is None and peer.retry_at > self.now
            ]
            if self._advert is not None or self.groups:
                times.append((int(self.now) // discovery.HOUR + 1) * discovery.HOUR)
        return min(times) if times else None


def _dialing(link: Link) -> bool:
    """A dial of this node's for a device (to sync, to tell, or a probe)."""
    return link.dials_for is not None or link.probe_for is not None


def plain_address(address: str) -> str:
    """An address as people and limits should see it: an IPv4-mapped IPv6
    address (`::ffff:192.0.2.7`, as a dual-stack listener reports an IPv4
    peer) as the IPv4 address it is; anything else as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return address


def _merge(so_far: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Two reports of changes to one group in one sync, as one."""
    if so_far is None:
        return more
    merged = dict(so_far)
    merged["ops"] = so_far["ops"] + more["ops"]
    for key in ("added", "removed", "roles"):
        merged[key] = [*so_far[key], *more[key]]
    for key in ("epoch", "history"):
        if more[key] is not None:
            merged[key] = more[key]
    return merged


def _unproven(link: Link) -> bool:
    """A dial that sent its sealed proof and got no proof back (yet)."""
    return isinstance(link, ChannelLink) and link.proof_sent and link.peer is None


def _proven_device(link: Link) -> bytes | None:
    """The device a channel link proved, if it did."""
    if isinstance(link, ChannelLink) and link.peer is not None:
        return link.peer.device_id.raw
    return None


def ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def _plain_name(proposed: str | None) -> str | None:
    """A joining device's proposed person, if it is a valid name (else none)."""
    if proposed is None:
        return None
    try:
        return validate_name(proposed, "a person's name")
    except CoveyError:
        return None


def _error_reply(request: int, error: CoveyError) -> io.Reply:
    return io.Reply(
        request, {"message": str(error), "code": error.code}, error=type(error).__name__
    )
