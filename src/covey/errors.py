"""The one error tree of covey.

Every failure covey reports is one of these classes, split by who is at fault:

* `InvalidInput`: bytes that came from outside (a peer, a relay, a file handed
  to a command) are malformed, forged or not acceptable. The input is dropped;
  nothing local changes.
* `UsageError`: the local user or caller asked for something that cannot be
  done (no identity yet, a wrong passphrase, an identity that already exists).
* `StoreError`: the local store cannot be used as it is (corrupt, written by a
  newer covey, unsafe permissions).

The first line of each class docstring is written for users: the CLI prints
`str(error)`, which is the message given at the raise site or, failing that,
that first line. Messages never contain secret material.
"""

from __future__ import annotations


class CoveyError(Exception):
    """Something went wrong in covey."""

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            doc = type(self).__doc__ or "covey error"
            message = doc.strip().splitlines()[0]
        super().__init__(message)

    @property
    def code(self) -> str:
        """A stable machine-readable name for the error (for --json output)."""
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


# --- untrusted input -------------------------------------------------------


class InvalidInput(CoveyError):
    """Input from outside this device was rejected."""


class MalformedMessage(InvalidInput):
    """The message is malformed: it does not decode as a covey message."""


class OversizeMessage(MalformedMessage):
    """The message is larger than covey accepts."""


class UnknownMessageType(MalformedMessage):
    """The message is of a type that is not accepted here."""


class UnsupportedVersion(InvalidInput):
    """The message uses a protocol version this covey does not support."""


class BadSignature(InvalidInput):
    """The message's signature does not verify: it was forged or altered."""


class UnknownDevice(InvalidInput):
    """The message is signed by a device this covey does not know."""


class DecryptionFailed(InvalidInput):
    """The data could not be decrypted: it was altered or is not for this key."""


class BadKeyWrap(InvalidInput):
    """A wrapped key did not open, or is not the key its op committed to."""


class WrongGroup(InvalidInput):
    """The op belongs to another group."""


class BufferFull(InvalidInput):
    """Too many ops are waiting for their parents: this one was not kept."""


class OutsiderLimit(InvalidInput):
    """A device wrote more ops after it knew it was no member than any replica keeps."""


class HandshakeFailed(InvalidInput):
    """The secure channel could not be set up: the peer's messages did not check out."""


class PeerRefused(InvalidInput):
    """The peer is not a device this one knows."""


class NotSealedData(InvalidInput):
    """That is not data sealed by covey (or it is damaged)."""


class BadBlob(InvalidInput):
    """That is not a file shared through a relay for this device, or the relay altered it."""


class NeverAMember(InvalidInput):
    """The data was sealed by a device that was never a member of the group."""


class BadShare(InvalidInput):
    """This is not a recovery share covey can use.

    Recovery shares are secret: a message names a share by where it came from
    (its label, such as "share 2" or "line 3 of words.txt") and a word by its
    position, never by the word itself. The messages are worded with no
    SLIP-39 word in them at all, so none can be mistaken for a leaked one
    (a test checks it).
    """


class ShareWordUnknown(BadShare):
    """A word of the recovery share is not a SLIP-39 word."""


class ShareWrongLength(BadShare):
    """The recovery share has the wrong number of words."""


class ShareChecksumFailed(BadShare):
    """The recovery share has a mistyped word: its checksum fails."""


class ShareUndecodable(BadShare):
    """The recovery share's words pass their checksum but do not decode as a SLIP-39 share."""


class NotACoveyShare(BadShare):
    """This is a SLIP-39 share, but not one of a covey recovery dealing."""


class ShareFromAnotherDealing(BadShare):
    """A recovery share is from another dealing than the others."""


class DuplicateShare(BadShare):
    """The same recovery share was given more than once."""


class ShareNotDealt(BadShare):
    """A recovery share is not the one dealt (altered, or from another dealing)."""


class BadDealing(InvalidInput):
    """The recovery shares are the ones dealt but do not combine: the dealing itself is faulty."""


class RelayRefused(InvalidInput):
    """The relay refused the request."""

    #: The relay's code for it (PROTOCOL.md section 18.4), the same on both sides.
    reason = "refused"


class RelayItemTooLarge(RelayRefused):
    """That item is larger than the relay takes (4 MiB)."""

    reason = "too-large"


class RelayInboxFull(RelayRefused):
    """That device's inbox on the relay is full; try again once it has fetched."""

    reason = "inbox-full"


class RelaySegmentFull(RelayRefused):
    """The group's mirror on the relay is full for this key epoch."""

    reason = "segment-full"


class RelayBadLifetime(RelayRefused):
    """The relay keeps items for 1 second to 30 days; that lifetime is outside it."""

    reason = "bad-ttl"


class RelayBadWait(RelayRefused):
    """The relay holds a wait for at most the seconds its hello states (300); ask for less."""

    reason = "bad-wait"


class RelaySlowDown(RelayRefused):
    """Too many requests to the relay at once (or waits: one per connection); wait a moment."""

    reason = "slow-down"


class RelayNotAllowed(RelayRefused):
    """The relay did not accept this device's right to do that."""

    reason = "not-allowed"


class RelayNothingThere(RelayRefused):
    """The relay holds nothing under that name (it may have expired)."""

    reason = "unknown"


class RelayMalformed(RelayRefused):
    """The relay could not read the request."""

    reason = "malformed"


#: Each relay refusal by its code (what a device raises for an answer).
RELAY_REFUSALS: dict[str, type[RelayRefused]] = {
    cls.reason: cls
    for cls in (
        RelayItemTooLarge,
        RelayInboxFull,
        RelaySegmentFull,
        RelayBadLifetime,
        RelayBadWait,
        RelaySlowDown,
        RelayNotAllowed,
        RelayNothingThere,
        RelayMalformed,
    )
}


# --- local misuse ----------------------------------------------------------


class UsageError(CoveyError):
    """covey cannot do what was asked."""


class NoIdentity(UsageError):
    """This device has no identity yet: run `covey init` first."""


class IdentityExists(UsageError):
    """This device already has an identity (use `covey init --force` to replace it)."""


class WrongPassphrase(UsageError):
    """Wrong passphrase: the store was not unlocked and nothing was changed."""


class PassphraseRequired(UsageError):
    """The store is locked with a passphrase: set COVEY_PASSPHRASE or run in a terminal."""


class InvalidArgument(UsageError):
    """An argument is not valid."""


class NotEnoughShares(UsageError):
    """Too few recovery shares: ask more of their holders for theirs."""


class NotAllowed(UsageError):
    """The group's rules do not allow that change."""


class NotAMember(UsageError):
    """This device is not a member of that group."""


class NoSuchGroup(UsageError):
    """There is no group by that name on this device."""


class NoSuchDevice(UsageError):
    """No device of that group matches: `covey devices -g GROUP` lists them."""


class NoSuchPerson(UsageError):
    """Nobody in that group has that name: `covey devices -g GROUP` lists people."""


class AmbiguousDevice(UsageError):
    """More than one device matches: name one by more of its device ID."""


class GroupExists(UsageError):
    """A group by that name already exists on this device."""


class NeedsRotation(UsageError):
    """The group's current key is not held by exactly its members: rotate first."""


class NodeRunning(UsageError):
    """`covey up` is already running for this device."""


class NodeBusy(UsageError):
    """Another covey command is changing this device's store: try again in a moment."""


class NodeGone(UsageError):
    """The running node stopped before it answered: check whether the command was done."""


class RelayUnreachable(UsageError):
    """No relay of the group answered: check the network, or try again later."""


class KeyUnavailable(UsageError):
    """This device does not hold the key needed (it was not a member then)."""


# --- local state -----------------------------------------------------------


class StoreError(CoveyError):
    """The local store cannot be used."""


class StoreCorrupt(StoreError):
    """The local store is damaged or was altered outside covey."""


class StoreTooNew(StoreError):
    """The local store was written by a newer covey: upgrade covey to use it."""


class StoreTooOld(StoreError):
    """The store was written by an older covey in a form this one cannot convert in place."""


class RelayStoreFailed(StoreError):
    """The relay's store failed (its database gone, a disk full): that connection ended."""


class UnsafePermissions(StoreError):
    """The local store is readable by other users: restrict it with chmod 600."""
