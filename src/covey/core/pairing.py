"""Pairing a new device: a short code (SPAKE2) or a link, then Noise_XXpsk3.

The inviter (a member that may add devices) makes an `Invitation`: a short
code such as `7-velvet-harbor` (a number that names the invitation on the LAN,
and two words from the SLIP-39 list) or a link carrying 32 random bytes.

The joiner connects and the two run one Noise_XXpsk3 handshake (prologue
`covey/v1/pair`) with no extra round trip:

    -> e                  payload: joiner's SPAKE2 message (in the clear, as SPAKE2 allows)
    <- e, ee, s, es       payload: inviter's SPAKE2 message
    -> s, se, psk         payload: joiner's signed device record

Both sides derive the psk from the SPAKE2 key (BLAKE2b, `covey/v1/pairpsk`),
or take the link's 32 bytes as it. A joiner with the wrong code fails the
third message: the inviter counts a failed attempt, and after
`MAX_ATTEMPTS` the invitation is destroyed, so an attacker gets that many
online guesses of a 20-bit code and no offline guess (SPAKE2's promise).
A man in the middle who does not know the code cannot read message 3 and
cannot write the inviter's first transport message, which the joiner waits
for: each side is authenticated by the code.

After the handshake the inviter checks the joiner's record names the key the
handshake proved, adds it (an `add` op with the keys wrapped for it), and
sends the group's ops on the channel. Both sides can show the same short
authentication string (`sas_words`) derived from the handshake hash.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Final

from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST
from spake2 import SPAKE2_A, SPAKE2_B

from covey.core import Rng, channel, crypto, encoding, fields, noise, words
from covey.core.channel import check_peer_record
from covey.core.group import Group
from covey.core.identity import DeviceRecord, Identity
from covey.errors import (
    HandshakeFailed,
    InvalidArgument,
    InvalidInput,
    MalformedMessage,
    NotAllowed,
)

PROLOGUE: Final = b"covey/v1/pair"
PATTERN: Final = "XXpsk3"
#: Wrong codes an invitation survives: then it is destroyed.
MAX_ATTEMPTS: Final = 3
#: Invitation numbers: short to type, enough to tell invitations on a LAN apart.
MAX_NAMEPLATE: Final = 999
CODE_WORDS: Final = 2
LINK_PREFIX: Final = "covey:join:"
SAS_WORDS: Final = 4
_SPAKE_IDS: Final = {"idA": b"covey/v1/inviter", "idB": b"covey/v1/joiner"}
#: The welcome message can carry a long log: allow the channel's maximum.
WELCOME_LIMITS: Final = encoding.Limits(
    total=channel.MAX_MESSAGE,
    bin_len=channel.MAX_MESSAGE,
    str_len=64,
    array_len=100_000,
    map_len=8,
    depth=4,
    objects=200_000,
)


def _psk_from_spake(key: bytes) -> bytes:
    return crypto.derive_key(key, crypto.HashDomain.PAIRING_PSK)


def sas_words(handshake_hash: bytes) -> list[str]:
    """A few words both sides derive from the handshake: compare them if you like."""
    return words.safety_words(crypto.blake2b(handshake_hash, crypto.HashDomain.PAIRING_SAS))[
        :SAS_WORDS
    ]


@dataclass(frozen=True)
class Secret:
    """What the joiner types or scans: a short code, or a link's 32 bytes."""

    nameplate: int
    code: str | None = None
    link_key: bytes | None = None

    @property
    def code_tag(self) -> bytes:
        """The advert tag a joiner with the code looks for (from the number alone)."""
        return crypto.blake2b(
            str(self.nameplate).encode(), crypto.HashDomain.INVITATION_TAG, size=8
        )

    @property
    def link_tag(self) -> bytes | None:
        """The advert tag a joiner with the link looks for (from the link's key)."""
        if self.link_key is None:
            return None
        return crypto.blake2b(self.link_key, crypto.HashDomain.INVITATION_TAG, size=8)

    @property
    def tag(self) -> bytes:
        """The tag this joiner looks for: the link's if it has the link, else the code's."""
        return self.link_tag or self.code_tag

    @property
    def advert_tags(self) -> list[bytes]:
        """The tags the inviter advertises, so that either kind of joiner finds it."""
        return [t for t in (self.code_tag, self.link_tag) if t is not None]

    def __repr__(self) -> str:
        return f"Secret(nameplate={self.nameplate}, <redacted>)"

    def as_link(self) -> str:
        if self.link_key is None:
            raise InvalidArgument("this invitation has no link")
        encoded = base64.b32encode(self.nameplate.to_bytes(2, "big") + self.link_key)
        return LINK_PREFIX + encoded.decode().rstrip("=").lower()


def new_secret(rng: Rng) -> Secret:
    """A fresh invitation secret: a short code and, for the QR code, a link key."""
    nameplate = 1 + int.from_bytes(rng(2), "big") % MAX_NAMEPLATE
    chosen = [WORDLIST[int.from_bytes(rng(2), "big") % len(WORDLIST)] for _ in range(CODE_WORDS)]
    return Secret(nameplate, "-".join([str(nameplate), *chosen]), rng(32))


def parse_code(text: str) -> Secret:
    """A typed code such as `7-velvet-harbor` (case and spaces forgiven)."""
    parts = text.strip().lower().replace(" ", "-").split("-")
    if len(parts) != 1 + CODE_WORDS or not parts[0].isdigit():
        raise InvalidArgument("a code looks like 7-velvet-harbor")
    nameplate = int(parts[0])
    if not 1 <= nameplate <= MAX_NAMEPLATE or any(p not in WORD_INDEX_MAP for p in parts[1:]):
        raise InvalidArgument("that is not a covey code")
    return Secret(nameplate, "-".join(parts))


def parse_link(text: str) -> Secret:
    """A link as the QR code carries it."""
    text = text.strip()
    if not text.lower().startswith(LINK_PREFIX):
        raise InvalidArgument(f"a link starts with {LINK_PREFIX}")
    body = text[len(LINK_PREFIX) :].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise InvalidArgument("that is not a covey link") from exc
    if len(raw) != 34:
        raise InvalidArgument("that is not a covey link")
    return Secret(int.from_bytes(raw[:2], "big"), None, raw[2:])


@dataclass
class Invitation:
    """The inviter's side of one invitation: single use, expiring, three tries."""

    group_id: bytes
    role: str
    secret: Secret
    expires: int
    attempts_left: int = MAX_ATTEMPTS
    used: bool = False
    failures: list[str] = field(default_factory=list)

    def check_open(self, now: int) -> None:
        if self.used:
            raise NotAllowed("this invitation was already used")
        if now >= self.expires:
            raise NotAllowed("this invitation has expired")
        if self.attempts_left <= 0:
            raise NotAllowed("this invitation was destroyed after too many wrong codes")

    def failed(self, reason: str) -> None:
        self.attempts_left -= 1
        self.failures.append(reason)

    def succeeded(self) -> None:
        self.used = True


class _Side:
    def __init__(self, me: Identity, rng: Rng, *, initiator: bool) -> None:
        self.me = me
        self._rng = rng
        self.noise = noise.Handshake(
            PATTERN,
            initiator=initiator,
            rng=rng,
            prologue=PROLOGUE,
            static_secret=me.secrets.channel_secret,
            psks=None,
        )
        self._spake: SPAKE2_A | SPAKE2_B | None = None

    def _finish_spake(self, theirs: bytes) -> None:
        assert self._spake is not None
        try:
            key = self._spake.finish(theirs)
        except Exception as exc:  # spake2 raises its own types for bad messages
            raise HandshakeFailed("the peer's pairing message is not valid") from exc
        self.noise.provide_psks(_psk_from_spake(key))

    @property
    def transport(self) -> noise.Transport:
        if self.noise.transport is None:
            raise HandshakeFailed("the pairing handshake is not complete")
        return self.noise.transport

    @property
    def sas(self) -> list[str]:
        return sas_words(self.transport.handshake_hash)


class Joiner(_Side):
    """The new device's side of the pairing handshake.

    With a link the psk is the link's key and the first message carries no
    SPAKE2 message; with a code, SPAKE2 (as "B") runs in the first two.
    """

    def __init__(self, me: Identity, secret: Secret, rng: Rng) -> None:
        super().__init__(me, rng, initiator=True)
        if secret.link_key is not None:
            self.noise.provide_psks(secret.link_key)
        else:
            assert secret.code is not None
            self._spake = SPAKE2_B(secret.code.encode(), entropy_f=rng, **_SPAKE_IDS)

    def first(self) -> bytes:
        return self.noise.write_message(b"" if self._spake is None else self._spake.start())

    def third(self, second: bytes) -> bytes:
        """Read the inviter's message; answer with this device's record."""
        theirs = self.noise.read_message(second)
        if self._spake is not None:
            self._finish_spake(theirs)
        elif theirs:
            raise HandshakeFailed("unexpected pairing data")
        return self.noise.write_message(self.me.record_bytes)

    @property
    def inviter_key(self) -> bytes:
        """The inviter's channel key, as the handshake proved it (check it in the group)."""
        remote = self.transport.remote_static
        assert remote is not None
        return remote


class Inviter(_Side):
    """The inviting device's side: it learns from the first message whether the
    joiner used the code (a SPAKE2 message) or the link (nothing)."""

    def __init__(self, me: Identity, invitation: Invitation, rng: Rng) -> None:
        super().__init__(me, rng, initiator=False)
        self.invitation = invitation

    def second(self, first: bytes) -> bytes:
        theirs = self.noise.read_message(first)
        secret = self.invitation.secret
        if not theirs:
            if secret.link_key is None:
                raise HandshakeFailed("this invitation has no link")
            self.noise.provide_psks(secret.link_key)
            return self.noise.write_message(b"")
        if secret.code is None:
            raise HandshakeFailed("this invitation has no code")
        self._spake = SPAKE2_A(secret.code.encode(), entropy_f=self._rng, **_SPAKE_IDS)
        mine = self._spake.start()
        self._finish_spake(theirs)
        return self.noise.write_message(mine)

    def finish(self, third: bytes) -> tuple[DeviceRecord, bytes]:
        """The joiner's device record (and its bytes), once its code is proven.

        A wrong code raises HandshakeFailed and costs the invitation an attempt.
        """
        try:
            record_bytes = self.noise.read_message(third)
        except HandshakeFailed:
            self.invitation.failed("wrong code")
            raise HandshakeFailed("wrong code: the joining device does not know it") from None
        return check_peer_record(record_bytes, self.transport.remote_static), record_bytes


def welcome_message(group: Group) -> bytes:
    """What the inviter sends once the code is proven: `{g: group ID, o: [every op]}`."""
    return encoding.encode({"g": group.id, "o": [op.raw for op in group.log.order]}, WELCOME_LIMITS)


def read_welcome(me: Identity, message: bytes, inviter_key: bytes) -> tuple[Group, str]:
    """The group a welcome brings, and the inviter's name, once every check passes.

    This device must now be a member holding the current key, and the device
    that proved the code (`inviter_key`, its channel key) a member of that group.
    """
    body = fields.as_map(encoding.decode(message, WELCOME_LIMITS), ("g", "o"), what="welcome")
    group_id = fields.get_bytes(body, "g", size=32)
    ops = body["o"]
    if not isinstance(ops, list) or not all(isinstance(op, bytes) for op in ops):
        raise MalformedMessage("the welcome must list ops")
    group = Group.replica(me, group_id, ops)
    state = group.state
    if me.device_id.raw not in state.members:
        raise InvalidInput("the inviter did not add this device")
    inviter = [m for m in state.members.values() if m.record.channel_key == inviter_key]
    if not inviter:
        raise InvalidInput("the device that proved the code is not a member of that group")
    if state.current_epoch.id not in group.keys:
        raise InvalidInput("the group's current key was not wrapped for this device")
    return group, inviter[0].record.name
