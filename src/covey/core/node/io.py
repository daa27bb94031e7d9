"""What goes into a node and what comes out of it: events, commands, effects.

DESIGN. A `Node` (`covey.core.node.node`) is one device's whole behaviour
as a pure object: `node.handle(event, now, rng)` returns the effects the
event calls for, in the order they must be carried out. Whoever drives the
node (the `covey up` daemon, the simulator, a test) turns the world into
events and carries out the effects; it decides nothing about the protocol.

Connections are numbered: the driver numbers the connections it accepts
1, 2, 3, ... (`Incoming`); the node numbers its own dials -1, -2, ...
(`Dial`). A connection ID is never reused within one node's life.

The one rule a driver must keep: carry out effects in order, and finish a
`Persist` (one store transaction) before any effect after it. A driver that
crashes between a `Persist` and the sends after it loses nothing a peer was
told, because nothing was told before the state was durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ConnId = int

# --- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (the driver woke the node at a time it asked for, or later)."""


@dataclass(frozen=True, slots=True)
class AdvertSeen:
    """An advert was seen on the LAN (or changed).

    `txt` is its TXT record as it arrived, from anyone: the node reads it
    (`covey.core.discovery.read_advert`) and ignores what is not an advert.
    """

    name: str
    addresses: tuple[str, ...]
    port: int
    txt: bytes


@dataclass(frozen=True, slots=True)
class AdvertLost:
    """An advert was withdrawn or expired."""

    name: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """The listener accepted a connection (the driver chose `conn` > 0)."""

    conn: ConnId
    address: str


@dataclass(frozen=True, slots=True)
class Connected:
    """A `Dial` reached the peer; `address` is the one that answered."""

    conn: ConnId
    address: str


@dataclass(frozen=True, slots=True)
class Received:
    """Bytes arrived on a connection (any split of the stream)."""

    conn: ConnId
    data: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """A connection ended (the peer closed it, it broke, or a dial failed)."""

    conn: ConnId
    reason: str = "closed"


@dataclass(frozen=True, slots=True)
class Command:
    """A local user's request (CLI, control socket, simulated user)."""

    request: int
    action: Action


@dataclass(frozen=True, slots=True)
class Cancel:
    """The user who made `request` went away (Ctrl-C): stop what it started."""

    request: int


# --- commands (the `action` of a Command) ----------------------------------------


@dataclass(frozen=True, slots=True)
class CreateGroup:
    name: str
    history: Literal["shared", "forward"] = "shared"


@dataclass(frozen=True, slots=True)
class Rotate:
    group: str


@dataclass(frozen=True, slots=True)
class Heal:
    """Rotate only if the current key is not held by exactly the members (before sealing)."""

    group: str


@dataclass(frozen=True, slots=True)
class RemoveDevice:
    """Remove another member (an admin's act); the removal starts a new epoch.

    The final reply waits, at most `node.TELL_WAIT` seconds, for the members
    online to sync, and says which were told and which are still to hear.
    """

    group: str
    #: The device ID (32 bytes).
    device: bytes


@dataclass(frozen=True, slots=True)
class ChangeRole:
    """Make a member an admin, or an admin a member (the last admin stays one)."""

    group: str
    #: The device ID (32 bytes).
    device: bytes
    role: Literal["admin", "member"]


@dataclass(frozen=True, slots=True)
class Leave:
    """This device removes itself from a group; its keys for the group are erased.

    The group's ops stay until a remaining member has the leave (the node
    keeps dialing them for it), then the node deletes the group.
    """

    group: str


@dataclass(frozen=True, slots=True)
class Shred:
    group: str


@dataclass(frozen=True, slots=True)
class Invite:
    group: str
    role: Literal["admin", "member"] = "member"
    #: Seconds the invitation stays open.
    lifetime: int = 600
    #: The person the new device joins (by name: an existing person, or a
    #: new one); None: the person the joining device proposes, if any.
    person: str | None = None


@dataclass(frozen=True, slots=True)
class SetupRecovery:
    """Deal recovery shares for a group (an admin's act, PROTOCOL.md 19.1).

    `holders` name persons (a person's name, or a device of theirs); none:
    every person with a device in the group. The final reply carries the
    paper shares' words, once: the node keeps none of them.
    """

    group: str
    threshold: int
    paper: int = 0
    holders: tuple[str, ...] = ()
    #: The veto window, in seconds.
    veto: int = 72 * 3600


@dataclass(frozen=True, slots=True)
class AskHolders:
    """Ask a group's share holders to admit this device, or (with `person`) to let it
    recover that person: show a code and wait for approvals (PROTOCOL.md 19.2).

    `words`: paper shares, each a SLIP-39 mnemonic (a recovery only).
    """

    group: str
    person: str | None = None
    #: Seconds the code stays open.
    lifetime: int = 3600
    words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApproveRequest:
    """Approve, as a holder, the request of the device showing `code`.

    With `device` empty, only look: the request is shown and nothing is
    approved. With `device` (the device ID a look showed), approve it only
    if the asking device is that one; `device="*"` approves whichever
    (scripts, `--yes`).
    """

    code: str
    device: str = ""
    #: Seconds to look for the asking device.
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class VetoClaim:
    """Stop a pending admission (an admin) or recovery (a device of the person)."""

    group: str
    #: The claim's op ID, or a hex prefix of it (8 digits or more); empty: the
    #: one pending claim this device may veto.
    claim: str = ""


@dataclass(frozen=True, slots=True)
class PlacePerson:
    """Place a member in the person named `person` (an existing one, or a new one):
    an admin's act, PROTOCOL.md 6.4."""

    group: str
    #: The device ID (32 bytes).
    device: bytes
    person: str


@dataclass(frozen=True, slots=True)
class RenamePerson:
    """Give a person of the group another name (an admin's act)."""

    group: str
    person: str
    name: str


@dataclass(frozen=True, slots=True)
class Join:
    """Pair with an inviter: `code` (typed) or `link` (scanned), found on the LAN
    by its advert, or at `address` (host, port) when given, or through the
    relay at `relay` (a relay link: the inviter's group uses that relay)."""

    code: str | None = None
    link: str | None = None
    address: tuple[str, int] | None = None
    #: Seconds to look for the inviter.
    timeout: float = 30.0
    relay: str | None = None


@dataclass(frozen=True, slots=True)
class AddRelay:
    """Name a relay for a group's members (an admin's act): `link` as `covey relay serve`
    printed it. The same relay with a new address moves it."""

    group: str
    link: str


@dataclass(frozen=True, slots=True)
class RemoveRelay:
    """The group's members stop using a relay (an admin's act), named by its key."""

    group: str
    #: The relay's key (32 bytes).
    key: bytes


Action = (
    CreateGroup
    | Rotate
    | Heal
    | RemoveDevice
    | ChangeRole
    | Leave
    | Shred
    | Invite
    | PlacePerson
    | SetupRecovery
    | VetoClaim
    | AskHolders
    | ApproveRequest
    | RenamePerson
    | Join
    | AddRelay
    | RemoveRelay
)
Event = Tick | AdvertSeen | AdvertLost | Incoming | Connected | Received | Closed | Command | Cancel

# --- effects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerMet:
    """A device this node finished a sync with."""

    device: bytes
    name: str
    address: str
    time: int


@dataclass(frozen=True, slots=True)
class Persist:
    """Make these changes durable, in one store transaction, before anything after it.

    `groups` changed (new ops or keys); `created` are new to the store (their
    name row too); `shredded` are to be deleted with their keys; `erased`
    lose their epoch keys but keep their ops (this device left: the ops go
    on until a member has the leave), after the changes to `groups` are
    stored; `peers` were met. The driver reads the groups' contents from the
    node.
    """

    groups: tuple[bytes, ...] = ()
    created: tuple[bytes, ...] = ()
    shredded: tuple[bytes, ...] = ()
    peers: tuple[PeerMet, ...] = ()
    erased: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    conn: ConnId
    data: bytes


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a connection to the first of `addresses` that answers on `port`."""

    conn: ConnId
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True, slots=True)
class Close:
    conn: ConnId


@dataclass(frozen=True, slots=True)
class Advertise:
    """Publish an advert named `name` with the TXT record `txt` on this node's
    port (replacing none). `txt` is published as it is."""

    name: str
    txt: bytes


@dataclass(frozen=True, slots=True)
class Withdraw:
    name: str


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Send a `Tick` at `time` (or sooner: a tick is always safe)."""

    time: float


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the user something happened (a log line, a JSON event)."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a `Command`; the last one for a request has `final`.

    `error` is a `covey.errors` class name when the command failed (the
    `data` then holds its one-line `message`).
    """

    request: int
    data: dict[str, Any]
    final: bool = True
    error: str | None = None


Effect = Persist | Send | Dial | Close | Advertise | Withdraw | WakeAt | Notify | Reply
