"""Pairing a new device: a short code (SPAKE2) or a link, then Noise_XXpsk3.

The inviter (a member that may add devices) makes an `Invitation`: a short
code such as `7-velvet-harvest` (a number that names the invitation on the LAN,
and two words from the SLIP-39 list) or a link carrying 32 random bytes.

The joiner connects and the two run one Noise_XXpsk3 handshake (prologue
`covey/v1/pair`), then confirm the code both ways before either shows who
it is:

    -> e                  payload: joiner's SPAKE2 message (in the clear, as SPAKE2 allows)
    <- e, ee, s, es       payload: inviter's SPAKE2 message
    -> s, se, psk         payload: the joiner's confirmation (a MAC under the pairing key)
    <- transport          the inviter's confirmation
    -> transport          the joiner's proof (its signed device record, its signature)
                          and the person it proposes to be (PROTOCOL.md 6.4)
    <- transport          the welcome, with the inviter's proof

Both sides' Noise static keys are fresh for each session: they identify
nobody (the pattern is kept for its shape: three messages, the psk mixed
into the third, after SPAKE2 has run). The pairing key is the SPAKE2 key,
or the link's 32 bytes; the psk is BLAKE2b of the SPAKE2 key (`covey/v1/pairpsk`),
or the link's bytes. Each confirmation is a keyed BLAKE2b of the handshake
hash under the pairing key (`covey/v1/pairkcj` for the joiner's, then
`covey/v1/pairkci` for the inviter's), compared in constant time.

A joiner with the wrong code fails at message 3: the inviter counts a
failed attempt, and after `MAX_ATTEMPTS` the invitation is destroyed, so an
attacker gets that many online guesses of a 20-bit code and no offline
guess (SPAKE2's promise). An impostor answering a joiner gets message 3 (a
guess tested, nothing else): it cannot confirm the code, and the joiner
shows nothing that identifies it (its record, its keys, its device ID)
until the inviter's confirmation checks. Nothing before that depends on
either side's long-term keys.

After that the inviter checks the joiner's proof (the record verifies, and
its signing key signed the handshake hash under `covey/v1/pair-joiner`),
adds it (an `add` op with the keys wrapped for it), and sends the group's
ops with its own proof (`covey/v1/pair-inviter`): the joiner checks the
device that proved the code is a member of the group. Both sides show the
same four pairing words (`pairing_words`, a short authentication string)
derived from the handshake hash: if they differ, someone else who knew the
code paired with one of them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Final

from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST
from spake2 import SPAKE2_A, SPAKE2_B

from covey.core import Rng, channel, crypto, encoding, fields, noise, words
from covey.core.group import Group
from covey.core.identity import MAX_NAME_LEN, DeviceRecord, Identity, open_device_record
from covey.errors import (
    HandshakeFailed,
    InvalidArgument,
    InvalidInput,
    MalformedMessage,
    NotAllowed,
    PeerRefused,
)

PROLOGUE: Final = b"covey/v1/pair"
PATTERN: Final = "XXpsk3"
#: Wrong codes an invitation survives: then it is destroyed.
MAX_ATTEMPTS: Final = 3
#: Invitation numbers: short to type, enough to tell invitations on a LAN apart.
MAX_NAMEPLATE: Final = 999
CODE_WORDS: Final = 2
LINK_PREFIX: Final = "covey:join:"
#: Words of a pairing's short authentication string (the pairing words).
PAIRING_WORDS: Final = 4
_SPAKE_IDS: Final = {"idA": b"covey/v1/inviter", "idB": b"covey/v1/joiner"}
#: The joiner's message 4: `[proof, person]`, the proof as `channel.proof`
#: makes it, the person a name (`covey init --person`) or empty.
JOINER_LIMITS: Final = encoding.Limits(
    total=2048, bin_len=1024, str_len=4 * MAX_NAME_LEN, array_len=2, map_len=0, depth=1, objects=3
)
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


def pairing_words(handshake_hash: bytes) -> list[str]:
    """The pairing words: four words both sides derive from the handshake hash.

    (Not a device's eight safety words.) Both devices show them; if they
    differ, the two did not pair with each other (someone else who knew the
    code did): the inviter removes the device it admitted, the joiner
    shreds the group it got.
    """
    digest = crypto.blake2b(handshake_hash, crypto.HashDomain.PAIRING_SAS)
    return words.safety_words(digest)[:PAIRING_WORDS]


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
    """A typed code such as `7-velvet-harvest` (case and spaces forgiven)."""
    parts = text.strip().lower().replace(" ", "-").split("-")
    if len(parts) != 1 + CODE_WORDS or not parts[0].isdigit():
        raise InvalidArgument("a code looks like 7-velvet-harvest")
    nameplate = int(parts[0])
    if not 1 <= nameplate <= MAX_NAMEPLATE or any(p not in WORD_INDEX_MAP for p in parts[1:]):
        raise InvalidArgument("that is not a covey code")
    return Secret(nameplate, "-".join(parts))


#: What joins a link's relays to it: `covey:join:...?relay=LINK&relay=LINK`.
RELAY_QUERY: Final = "?relay="
#: Relays one invitation link names, at most.
MAX_LINK_RELAYS: Final = 2


def with_relays(link: str, relays: list[str]) -> str:
    """An invitation link that names the relays to meet the inviter at."""
    if not relays:
        return link
    return link + RELAY_QUERY + "&relay=".join(relays[:MAX_LINK_RELAYS])


def link_relays(text: str) -> list[str]:
    """The relay links an invitation link names (none for a LAN-only link)."""
    _, query, rest = text.strip().partition(RELAY_QUERY)
    if not query:
        return []
    relays = rest.split("&relay=")
    if len(relays) > MAX_LINK_RELAYS or not all(relays):
        raise InvalidArgument("the link names its relays in a way covey does not read")
    return relays


def parse_link(text: str) -> Secret:
    """A link as the QR code carries it (any relays it names aside: `link_relays`)."""
    text = text.strip().partition(RELAY_QUERY)[0]
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


def _confirmation(key: bytes, domain: crypto.HashDomain, handshake_hash: bytes) -> bytes:
    """A key-confirmation MAC: keyed BLAKE2b of the handshake hash under the pairing key."""
    return crypto.blake2b(handshake_hash, domain, key=key)


class _Side:
    def __init__(self, rng: Rng, *, initiator: bool) -> None:
        self._rng = rng
        # A fresh static key for this session only: it identifies nobody.
        self.noise = noise.Handshake(
            PATTERN,
            initiator=initiator,
            rng=rng,
            prologue=PROLOGUE,
            static_secret=crypto.new_x25519_secret(rng),
            psks=None,
        )
        self._spake: SPAKE2_A | SPAKE2_B | None = None
        #: The SPAKE2 key, or the link's bytes, once known: keys the confirmations.
        self._key: bytes | None = None

    def _use_link(self, link_key: bytes) -> None:
        self._key = link_key
        self.noise.provide_psks(link_key)

    def _finish_spake(self, theirs: bytes) -> None:
        assert self._spake is not None
        try:
            key = self._spake.finish(theirs)
        except Exception as exc:  # spake2 raises its own types for bad messages
            raise HandshakeFailed("the peer's pairing message is not valid") from exc
        self._key = key
        self.noise.provide_psks(_psk_from_spake(key))

    def _confirmation(self, domain: crypto.HashDomain, handshake_hash: bytes) -> bytes:
        assert self._key is not None
        return _confirmation(self._key, domain, handshake_hash)

    @property
    def transport(self) -> noise.Transport:
        if self.noise.transport is None:
            raise HandshakeFailed("the pairing handshake is not complete")
        return self.noise.transport

    @property
    def handshake_hash(self) -> bytes:
        return self.transport.handshake_hash

    @property
    def pairing_words(self) -> list[str]:
        return pairing_words(self.transport.handshake_hash)


class Joiner(_Side):
    """The new device's side of the pairing handshake.

    With a link the psk is the link's key and the first message carries no
    SPAKE2 message; with a code, SPAKE2 (as "B") runs in the first two.
    Nothing it sends before `identify` depends on this device's identity.
    """

    def __init__(self, me: Identity, secret: Secret, rng: Rng, person: str | None = None) -> None:
        super().__init__(rng, initiator=True)
        self.me = me
        #: The person this device proposes to join as (a proposal: the inviter decides).
        self.person = person
        if secret.link_key is not None:
            self._use_link(secret.link_key)
        else:
            assert secret.code is not None
            self._spake = SPAKE2_B(secret.code.encode(), entropy_f=rng, **_SPAKE_IDS)
        #: Whether message 3 went out: whoever answered could then test one guess.
        self.guessed = False

    def first(self) -> bytes:
        return self.noise.write_message(b"" if self._spake is None else self._spake.start())

    def third(self, second: bytes) -> bytes:
        """Read the inviter's message; answer with this side's confirmation (no identity)."""
        theirs = self.noise.read_message(second)
        if self._spake is not None:
            self._finish_spake(theirs)
        elif theirs:
            raise HandshakeFailed("unexpected pairing data")
        confirmation = self._confirmation(
            crypto.HashDomain.PAIRING_CONFIRM_JOINER, self.noise.symmetric.h
        )
        self.guessed = True
        return self.noise.write_message(confirmation)

    def identify(self, inviter_confirmation: bytes) -> bytes:
        """Check the inviter's confirmation; only then prove who this device is.

        `inviter_confirmation` is the inviter's first transport message, as
        decrypted. A party without the code cannot make it: the joiner stops
        here having shown nothing of itself.
        """
        expected = self._confirmation(
            crypto.HashDomain.PAIRING_CONFIRM_INVITER, self.handshake_hash
        )
        if not crypto.equal(inviter_confirmation, expected):
            raise HandshakeFailed("the other device does not know the code")
        proof = channel.proof(
            self.me, crypto.SignDomain.PAIRING_JOINER, self.handshake_hash, record=True
        )
        return encoding.encode([proof, self.person or ""])


class Inviter(_Side):
    """The inviting device's side: it learns from the first message whether the
    joiner used the code (a SPAKE2 message) or the link (nothing)."""

    def __init__(self, me: Identity, invitation: Invitation, rng: Rng) -> None:
        super().__init__(rng, initiator=False)
        self.me = me
        self.invitation = invitation

    def second(self, first: bytes) -> bytes:
        theirs = self.noise.read_message(first)
        secret = self.invitation.secret
        if not theirs:
            if secret.link_key is None:
                raise HandshakeFailed("this invitation has no link")
            self._use_link(secret.link_key)
            return self.noise.write_message(b"")
        if secret.code is None:
            raise HandshakeFailed("this invitation has no code")
        self._spake = SPAKE2_A(secret.code.encode(), entropy_f=self._rng, **_SPAKE_IDS)
        mine = self._spake.start()
        self._finish_spake(theirs)
        return self.noise.write_message(mine)

    def confirm(self, third: bytes) -> bytes:
        """Check the joiner knows the code; return this side's confirmation (to send).

        A wrong code raises HandshakeFailed and costs the invitation an attempt.
        """
        before = self.noise.symmetric.h
        try:
            confirmation = self.noise.read_message(third)
            expected = self._confirmation(crypto.HashDomain.PAIRING_CONFIRM_JOINER, before)
            if not crypto.equal(confirmation, expected):
                raise HandshakeFailed("wrong confirmation")
        except HandshakeFailed:
            self.invitation.failed("wrong code")
            raise HandshakeFailed("wrong code: the joining device does not know it") from None
        return self._confirmation(crypto.HashDomain.PAIRING_CONFIRM_INVITER, self.handshake_hash)

    def joiner(self, message: bytes) -> tuple[DeviceRecord, bytes, str | None]:
        """The joiner's device record (and its bytes), once its proof checks, and the
        person it proposes (None: none).

        The proposal comes inside the session the code authenticated, as the
        record does; it is only a proposal (PROTOCOL.md 6.4).
        """
        value = encoding.decode(message, JOINER_LIMITS)
        if not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], bytes):
            raise MalformedMessage("not a joining device's proof")
        proof = value[0]
        try:  # (a proposal the inviter cannot use is dropped, never fatal: review, 7)
            person = fields.get_str({"person": value[1]}, "person", max_len=MAX_NAME_LEN) or None
        except MalformedMessage:
            person = None
        record_bytes, signature = channel.read_proof(proof)
        try:
            record = open_device_record(record_bytes).body
        except InvalidInput as exc:
            raise PeerRefused("the joining device's record does not verify") from exc
        channel.check_proof(
            record, signature, crypto.SignDomain.PAIRING_JOINER, self.handshake_hash
        )
        return record, record_bytes, person

    def welcome(self, group: Group, *, already: bool = False) -> bytes:
        """The welcome for the joiner: the group's log and this device's proof.

        `already`: the joiner was a member before this pairing (nothing was
        added; the invitation is not used up).
        """
        mine = channel.proof(
            self.me, crypto.SignDomain.PAIRING_INVITER, self.handshake_hash, record=False
        )
        return welcome_message(group, mine, already=already)


def welcome_message(group: Group, proof: bytes, *, already: bool = False) -> bytes:
    """What the inviter sends once the joiner is proven: `{g: group ID, o: [every
    op], p: the inviter's proof, m: 1 if the joiner was a member already, else 0}`."""
    ops = [op.raw for op in group.log.order]
    body = {"g": group.id, "o": ops, "p": proof, "m": int(already)}
    return encoding.encode(body, WELCOME_LIMITS)


@dataclass(frozen=True)
class Welcome:
    """What a welcome brought: the group, who invited, whether this device was a member already."""

    group: Group
    inviter: str
    already: bool


def read_welcome(me: Identity, message: bytes, handshake_hash: bytes) -> Welcome:
    """The group a welcome brings, and the inviter's name, once every check passes.

    This device must now be a member, and the device that proved the code
    (its proof signs this session's `handshake_hash`) a member of that
    group. A device the welcome adds must hold the current key; one that
    was a member already (`m`) is sent the log only (no key was wrapped for
    it in this pairing: if it lacks the current key, a member's heal gives
    it one, as for any member).
    """
    body = fields.as_map(
        encoding.decode(message, WELCOME_LIMITS), ("g", "o", "p", "m"), what="welcome"
    )
    group_id = fields.get_bytes(body, "g", size=32)
    already = bool(fields.get_int(body, "m", min_value=0, max_value=1))
    inviter_id, signature = channel.read_proof(fields.get_bytes(body, "p", max_len=1024))
    ops = body["o"]
    if not isinstance(ops, list) or not all(isinstance(op, bytes) for op in ops):
        raise MalformedMessage("the welcome must list ops")
    group = Group.replica(me, group_id, ops)
    state = group.state
    if me.device_id.raw not in state.members:
        raise InvalidInput("the inviter did not add this device")
    inviter = state.members.get(inviter_id)
    if inviter is None:
        raise InvalidInput("the device that proved the code is not a member of that group")
    channel.check_proof(
        inviter.record, signature, crypto.SignDomain.PAIRING_INVITER, handshake_hash
    )
    if not already and state.current_epoch.id not in group.keys:
        raise InvalidInput("the group's current key was not wrapped for this device")
    return Welcome(group, inviter.record.name, already)
