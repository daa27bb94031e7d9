"""Members that do not know each other yet: issue 9, finding 6a.

The laptop (admin) adds the phone, then the tablet; the phone synced with
the laptop before the tablet's add, so it does not know the tablet. With
the laptop away, the phone refused the tablet ("the peer is not a device
this one knows") every time, and could never learn of its add. Worse, they
never even met: the phone advertises only for the devices it knows, so the
tablet could not recognize the phone's adverts either.

Now the tablet probes the covey adverts it does not recognize for the
phone, and seals with its proof the ops that make it a member (its
*introduction*); the phone takes them through its log, knows the tablet,
and they sync. The other tests are the attacker's side: what a stranger's
forged, foreign or oversized introduction gets (nothing, and no change),
what a device whose add does not hold gets, what a probed stranger learns.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from covey.core import channel, introduction, keys
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, io
from covey.core.node.links import ChannelLink
from covey.core.node.node import MAX_PROBES, PROBE_AGAIN
from covey.core.ops import Add, OpContent, sign_op
from covey.core.seal import open_bytes, seal_bytes
from covey.errors import MalformedMessage, OversizeMessage, PeerRefused
from tests.conftest import NOW, SeededRng
from tests.core.test_node import Wire, dials, kinds
from tests.core.test_node_strangers import leaked, spy
from tests.harness import summary

LAPTOP, PHONE, TABLET, MALLORY = (
    create_identity(name, NOW, SeededRng(f"intro-{name}"))
    for name in ("laptop", "phone", "tablet", "mallory")
)
PHONE_AT, TABLET_AT, ELSEWHERE = ("10.0.0.2",), ("10.0.0.3",), ("192.0.2.9",)


def apart(*, phone_role: str = "member") -> tuple[Group, Group, Group]:
    """(laptop, phone, tablet) replicas: the phone holds the log from before the tablet's add."""
    rng = SeededRng("intro-group")
    laptop = Group.create(LAPTOP, "family", "shared", NOW, rng)
    laptop.add(PHONE.record_bytes, "admin" if phone_role == "admin" else "member", NOW + 1, rng)
    phone = Group.replica(PHONE, laptop.id, [op.raw for op in laptop.log.order])
    laptop.add(TABLET.record_bytes, "member", NOW + 2, rng)
    tablet = Group.replica(TABLET, laptop.id, [op.raw for op in laptop.log.order])
    return laptop, phone, tablet


def advertise(wire: Wire, node: Node, now: float) -> io.AdvertSeen:
    """`node`'s current advert (a tick makes it), as a looker at another host sees it."""
    wire.now = now
    wire.feed(node, io.Tick())
    advert = next(
        e
        for name, e in reversed(wire.log)
        if name == node.me.record.name and isinstance(e, io.Advertise)
    )
    at = PHONE_AT if node.me is PHONE else TABLET_AT
    return io.AdvertSeen(advert.name, at, 4242, advert.txt)


def ops_of(group: Group) -> set[bytes]:
    return {op.id for op in group.log.order}


def refusals(wire: Wire, name: str) -> list[str]:
    return [
        str(e.data["reason"])
        for who, e in wire.log
        if who == name and isinstance(e, io.Notify) and e.event == "connection_failed"
    ]


def test_two_members_sync_while_the_admin_who_added_one_is_away() -> None:
    """The scenario of the finding. Before: no dial at all (neither recognized
    the other's advert), and a dial would have been refused."""
    laptop, phone, tablet = apart()
    assert TABLET.device_id.raw not in phone.state.devices
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    phone_advert = advertise(wire, wire.a, NOW + 100)
    tablet_advert = advertise(wire, wire.b, NOW + 100)
    wire.feed(wire.a, tablet_advert)  # the phone cannot tell whose it is
    assert wire.a.adverts == {}
    wire.feed(wire.b, phone_advert)  # nor the tablet: the phone advertises for the laptop only
    assert wire.b.adverts == {}
    # ... so the tablet probes it, with its introduction sealed to the phone.
    assert ops_of(phone) == ops_of(tablet) == ops_of(laptop)
    assert summary(phone.state) == summary(tablet.state)
    assert TABLET.device_id.raw in phone.state.members
    assert refusals(wire, "phone") == refusals(wire, "tablet") == []
    # Both finished a sync with the other: the phone, which learnt something,
    # says so; a sync that changed nothing is only recorded as a peer met.
    synced = [e for who, e in wire.log if isinstance(e, io.Notify) and e.event == "synced"]
    assert "tablet" in {e.data["peer"] for e in synced}
    met = {(who, peer.name) for who, e in wire.log if isinstance(e, io.Persist) for peer in e.peers}
    assert {("phone", "tablet"), ("tablet", "phone")} <= met
    # The phone persisted the tablet's add before it said anything after it.
    phone_effects = [e for who, e in wire.log if who == "phone"]
    persisted = next(
        i for i, e in enumerate(phone_effects) if isinstance(e, io.Persist) and e.groups
    )
    sends = [i for i, e in enumerate(phone_effects) if isinstance(e, io.Send)]
    assert sends[0] < persisted < sends[1]  # (handshake message 2, then the proof)
    # What the tablet seals from now on, the phone opens.
    sealed = seal_bytes(tablet, b"the wifi password", b"", SeededRng("seal"))
    assert open_bytes(lambda _: phone, sealed)[0] == b"the wifi password"
    # And the phone now advertises for the tablet: from here on they find each other.
    again = advertise(wire, wire.a, NOW + 4000)
    wire.feed(wire.b, again)
    assert wire.b.adverts[again.name].device == PHONE.record


def test_the_tablet_rotates_while_apart_and_the_phone_gets_that_key_too() -> None:
    """Changes the tablet made with the admin away reach the phone in the same sync."""
    _, phone, tablet = apart()
    tablet.rotate(NOW + 50, SeededRng("tablet-rotates"))
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    wire.feed(wire.b, advertise(wire, wire.a, NOW + 100))
    assert ops_of(phone) == ops_of(tablet)
    assert phone.current_key() == tablet.current_key()


# --- what a stranger's introduction gets ---------------------------------------


def stranger_introduction(kind: str, phone: Group) -> channel.Introduction:
    """An introduction of Mallory's, of one kind of forgery."""
    rng = SeededRng(f"forge-{kind}")
    rotation, _ = keys.new_rotation(
        MALLORY.secrets.box_secret,
        {d: m.record.box_key for d, m in phone.state.members.items()}
        | {MALLORY.device_id.raw: MALLORY.record.box_key},
        rng,
    )
    body = Add(MALLORY.record, MALLORY.record_bytes, "member", rotation, b"")
    heads = tuple(sorted(phone.log.heads))
    laptop_seq = phone.log.latest[LAPTOP.device_id.raw] + 1
    if kind == "forged":  # signed as the laptop, with Mallory's key
        content = OpContent(phone.id, heads, laptop_seq, NOW, body)
        raw = sign_op(content, LAPTOP.device_id.raw, MALLORY.secrets.signing_seed).raw
    elif kind == "unsigned":  # the laptop's name, and no signature at all
        content = OpContent(phone.id, heads, laptop_seq, NOW, body)
        raw = sign_op(content, LAPTOP.device_id.raw, LAPTOP.secrets.signing_seed).raw
        raw = raw[: -channel.crypto.SIGNATURE_BYTES] + bytes(channel.crypto.SIGNATURE_BYTES)
    elif kind == "self-added":  # Mallory adds herself: she is nobody in that group
        content = OpContent(phone.id, heads, 1, NOW, body)
        raw = sign_op(content, MALLORY.device_id.raw, MALLORY.secrets.signing_seed).raw
    elif kind == "forged-chain":  # the laptop "adds" an accomplice, who adds Mallory
        accomplice = create_identity("accomplice", NOW, SeededRng("accomplice"))
        them = Add(accomplice.record, accomplice.record_bytes, "admin", rotation, b"")
        made_up = OpContent(phone.id, heads, laptop_seq, NOW, them)
        first = sign_op(made_up, LAPTOP.device_id.raw, MALLORY.secrets.signing_seed)
        content = OpContent(phone.id, (first.id,), 1, NOW, body)
        second = sign_op(content, accomplice.device_id.raw, accomplice.secrets.signing_seed)
        return [(phone.id, [first.raw, second.raw])]
    elif kind == "other-group":  # a real add of Mallory, in a group the phone is not in
        accomplice = create_identity("accomplice", NOW, SeededRng("accomplice"))
        theirs = Group.create(accomplice, "family", "shared", NOW, rng)
        raw = theirs.add(MALLORY.record_bytes, "member", NOW, rng).raw
        return [(theirs.id, [op.raw for op in theirs.log.order][1:])]
    else:
        raise AssertionError(kind)
    return [(phone.id, [raw])]


def probe(
    wire: Wire, dialer: Node, conn: int, offered: channel.Introduction, expect: Identity = PHONE
) -> None:
    """`dialer` dials wire.a by hand and seals `offered` with its proof."""
    link = ChannelLink(
        dialer,
        -conn,
        "",
        wire.now,
        SeededRng(f"probe{conn}"),
        initiator=True,
        expect=expect.record,
        introduction=offered,
    )
    dialer.links[-conn] = link
    wire.ends[(id(dialer), -conn)] = (wire.a, conn)
    wire.ends[(id(wire.a), conn)] = (dialer, -conn)
    wire.feed(wire.a, io.Incoming(conn, "10.0.0.66"))
    wire.feed(dialer, io.Connected(-conn, "10.0.0.2"))


@pytest.mark.parametrize(
    "kind", ["forged", "unsigned", "self-added", "forged-chain", "other-group"]
)
def test_a_strangers_introduction_is_refused_and_changes_nothing(kind: str) -> None:
    """Mallory holds the phone's record (she seals to it) and the group's ID, and
    makes up an add of herself. Refused, the same way as any stranger, with the
    phone's log and state as before; for a group the phone holds or not alike."""
    _, phone, _ = apart()
    before = (ops_of(phone), summary(phone.state), len(phone.log.pending))
    wire = Wire(Node(PHONE, [phone]), Node(MALLORY))
    wire.now = NOW + 100
    probe(wire, wire.b, 1, stranger_introduction(kind, phone))
    mine = [e for who, e in wire.log if who == "phone"]
    answer = [type(e).__name__ for e in mine if isinstance(e, (io.Send, io.Close, io.Persist))]
    assert answer == ["Send", "Close"]  # (handshake message 2; no proof, nothing stored)
    assert refusals(wire, "phone") == ["the peer is not a device this one knows"]
    assert (ops_of(phone), summary(phone.state), len(phone.log.pending)) == before
    assert 1 not in wire.a.links
    # Each got as far as the group: it passed what every introduction must
    # (an add of Mallory, signed by her key for the session) and was refused there.
    checked: list[bytes] = []
    changed = introduction.admit(
        {phone.id: phone},
        PHONE.device_id.raw,
        MALLORY.device_id.raw,
        stranger_introduction(kind, phone),
        lambda record: checked.append(record.device_id.raw),
    )
    assert (changed, checked) == (set(), [MALLORY.device_id.raw])
    assert (ops_of(phone), summary(phone.state), len(phone.log.pending)) == before


def test_held_and_foreign_groups_get_the_same_answer() -> None:
    """What Mallory sees for a group the phone holds and one it does not: the same
    bytes in the same messages, then the same close."""
    answers = []
    for kind in ("forged", "other-group"):
        _, phone, _ = apart()
        wire = Wire(Node(PHONE, [phone]), Node(MALLORY))
        probe(wire, wire.b, 1, stranger_introduction(kind, phone))
        answers.append(
            [
                (type(e).__name__, len(e.data) if isinstance(e, io.Send) else None)
                for who, e in wire.log
                if who == "phone" and isinstance(e, (io.Send, io.Close))
            ]
        )
    assert answers[0] == answers[1] == [("Send", answers[0][0][1]), ("Close", None)]


def honest_introduction(phone: Group, tablet: Group) -> channel.Introduction:
    made = introduction.introduction([tablet], TABLET.device_id.raw, PHONE.device_id.raw)
    assert [group_id for group_id, _ in made] == [phone.id]
    return made


@pytest.mark.parametrize(
    "pad",
    [
        lambda ops: ops * (channel.MAX_PROOF_OPS // len(ops) + 1),  # too many ops
        lambda ops: [*ops, ops[-1] + bytes(channel.MAX_PROOF_BYTES)],  # too many bytes
    ],
    ids=["ops", "bytes"],
)
def test_an_oversized_introduction_is_refused_before_anything_is_applied(
    pad: Callable[[list[bytes]], list[bytes]],
) -> None:
    """The tablet's real introduction, padded over a limit: refused as a whole
    (the same introduction within the limits is taken: the control)."""
    _, phone, tablet = apart()
    ((group_id, ops),) = honest_introduction(phone, tablet)
    before = ops_of(phone)
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    probe(wire, wire.b, 1, [(group_id, pad(ops))])
    assert refusals(wire, "phone") == ["the peer is not a device this one knows"]
    assert ops_of(phone) == before
    assert not [e for who, e in wire.log if who == "phone" and isinstance(e, io.Persist)]
    probe(wire, wire.b, 2, [(group_id, ops)])
    assert TABLET.device_id.raw in phone.state.members


def test_an_introduction_brings_nothing_the_dialer_wrote() -> None:
    """The tablet (a real member) slips an op of its own, written after its add,
    into its introduction: refused whole (an introduction brings only what led
    to the dialer's add), the phone's log unchanged; without it, taken."""
    _, phone, tablet = apart()
    ((group_id, ops),) = honest_introduction(phone, tablet)
    own = tablet.rotate(NOW + 50, SeededRng("tablet-writes")).raw
    before = ops_of(phone)
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    probe(wire, wire.b, 1, [(group_id, [*ops, own])])
    assert refusals(wire, "phone") == ["the peer is not a device this one knows"]
    assert ops_of(phone) == before
    probe(wire, wire.b, 2, [(group_id, ops)])
    assert TABLET.device_id.raw in phone.state.members


def test_someone_else_holding_a_members_real_add_gets_nothing_applied() -> None:
    """Mallory copied the tablet's real add and its chain (a former member has
    them) and names the tablet, but cannot sign this session as the tablet:
    refused before any group is looked at, nothing applied."""
    _, phone, tablet = apart()
    before = ops_of(phone)

    def not_signed_by_the_tablet(record: object) -> None:
        raise PeerRefused("the peer did not prove it is the device it names")

    with pytest.raises(PeerRefused):
        introduction.admit(
            {phone.id: phone},
            PHONE.device_id.raw,
            TABLET.device_id.raw,
            honest_introduction(phone, tablet),
            not_signed_by_the_tablet,
        )
    assert ops_of(phone) == before


def test_the_limits_of_an_introduction_as_read() -> None:
    group = bytes(32)
    proof = [bytes(32), bytes(channel.crypto.SIGNATURE_BYTES)]

    def read(entries: object) -> None:
        channel.read_dialer_proof(channel.encoding.encode([*proof, entries]))

    read([[group, [b"op"]]])
    half = channel.MAX_PROOF_BYTES // 2
    ops = [bytes(half // 128)] * 128
    read([[group, ops], [bytes(31) + b"\x01", ops]])  # (exactly at both limits)
    with pytest.raises(OversizeMessage):
        read([[group, [b"o"] * channel.MAX_PROOF_OPS], [bytes(31) + b"\x01", [b"o"]]])
    with pytest.raises(MalformedMessage):  # (each list within MAX_PROOF_OPS, as decoded)
        read([[group, [b"o"] * (channel.MAX_PROOF_OPS + 1)]])
    with pytest.raises(MalformedMessage):
        read([[bytes([i]) * 32, [b"o"]] for i in range(channel.MAX_PROOF_GROUPS + 1)])
    for bad in ([], [[group, []]], [[group, [b"o"]], [group, [b"o"]]], [[b"short", [b"o"]]]):
        with pytest.raises(MalformedMessage):
            read(bad)


def test_a_member_far_behind_gets_a_bounded_introduction_and_refuses_it_cleanly() -> None:
    """The laptop made more changes than an introduction holds after the phone's
    last sync, then added the tablet: the tablet sends the latest MAX_PROOF_OPS
    ops, the phone lacks what comes before, and takes none of them (nothing
    waits in its pending buffer on a stranger's say-so). The limit: they sync
    once the laptop, or any device the phone knows, brings the phone closer."""
    rng = SeededRng("far-behind")
    laptop = Group.create(LAPTOP, "family", "shared", NOW, rng)
    laptop.add(PHONE.record_bytes, "member", NOW + 1, rng)
    phone = Group.replica(PHONE, laptop.id, [op.raw for op in laptop.log.order])
    for k in range(channel.MAX_PROOF_OPS + 10):
        laptop.rotate(NOW + 2 + k, rng)
    laptop.add(TABLET.record_bytes, "member", NOW + 1000, rng)
    tablet = Group.replica(TABLET, laptop.id, [op.raw for op in laptop.log.order])
    ((_, ops),) = honest_introduction(phone, tablet)
    assert len(ops) == channel.MAX_PROOF_OPS
    before = ops_of(phone)
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    wire.feed(wire.b, advertise(wire, wire.a, NOW + 2000))
    assert refusals(wire, "phone") == ["the peer is not a device this one knows"]
    assert ops_of(phone) == before
    assert phone.log.pending == {}


# --- devices whose add does not hold -------------------------------------------------


def test_a_device_added_by_a_removed_admin_is_not_let_in() -> None:
    """The laptop is stolen: the phone (an admin) removes it, while the thief,
    not knowing, adds a tablet of his own. The tablet's introduction is made of
    real, signed ops, and the phone takes them (every replica keeps them), but
    the removal vetoes the add: the tablet is no member, not even a device the
    phone knows, and is refused like a stranger."""
    laptop, phone, tablet = apart(phone_role="admin")
    phone.remove(LAPTOP.device_id.raw, NOW + 3, SeededRng("remove-laptop"))
    members = set(phone.state.members)
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    probe(wire, wire.b, 1, honest_introduction(phone, tablet))
    assert refusals(wire, "phone") == ["the peer is not a device this one knows"]
    assert ops_of(laptop) <= ops_of(phone)  # (the add, kept, and vetoed)
    assert set(phone.state.members) == members
    assert TABLET.device_id.raw not in phone.state.devices
    persisted = [e for who, e in wire.log if who == "phone" and isinstance(e, io.Persist)]
    sent = [e for who, e in wire.log if who == "phone" and isinstance(e, io.Send)]
    assert len(persisted) == 1  # (the ops, stored)
    assert len(sent) == 1  # (then handshake message 2 only)


def test_a_removed_device_that_introduces_itself_only_learns_of_its_removal() -> None:
    """The laptop removed the tablet and told the phone, then rotated; the
    tablet, away, does not know. It probes the phone (which no longer
    advertises for it) with its old add: the phone knows it, as removed, and
    sends it the past of its removal and nothing after (not the later
    rotation); the tablet says it was removed, and the phone's log is as it was."""
    laptop, _, tablet = apart()
    rng = SeededRng("removed")
    removal = laptop.remove(TABLET.device_id.raw, NOW + 3, rng)
    later = laptop.rotate(NOW + 4, rng)
    phone = Group.replica(PHONE, laptop.id, [op.raw for op in laptop.log.order])
    before = ops_of(phone)
    wire = Wire(Node(PHONE, [phone]), Node(TABLET, [tablet]))
    wire.feed(wire.b, advertise(wire, wire.a, NOW + 100))
    assert ops_of(phone) == before
    assert TABLET.device_id.raw not in phone.state.members
    assert removal.id in tablet.log
    assert later.id not in tablet.log
    assert later.id not in tablet.keys
    told = [e for who, e in wire.log if who == "tablet" and isinstance(e, io.Notify)]
    assert [e.data["group"] for e in told if e.event == "removed"] == ["family"]


# --- what probing costs, and shows ------------------------------------------------


def mallory_node() -> Node:
    """Mallory's node, in a group of her own with an accomplice (so it advertises)."""
    rng = SeededRng("mallory")
    group = Group.create(MALLORY, "mine", "shared", NOW, rng)
    group.add(create_identity("accomplice", NOW, rng).record_bytes, "member", NOW, rng)
    return Node(MALLORY, [group])


def test_a_probed_stranger_learns_nothing_and_is_probed_ever_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The phone is away; the tablet sees a covey advert it does not recognize
    (Mallory's) and probes it for the phone. Mallory's node opens nothing: it
    sees neither the tablet's nor the phone's identity nor the group. The same
    address is probed for the phone again after PROBE_AGAIN, then twice that."""
    _, phone, tablet = apart()
    mallory = mallory_node()
    wire = Wire(mallory, Node(TABLET, [tablet]))
    advert = advertise(wire, wire.b, NOW + 100)  # (the tablet's own, for the shape)
    wire.feed(mallory, io.Tick())
    theirs = next(e for who, e in wire.log if who == "mallory" and isinstance(e, io.Advertise))
    seen = io.AdvertSeen(theirs.name, ELSEWHERE, 9, theirs.txt)
    assert advert.txt != seen.txt
    with spy(monkeypatch, initiator=False) as learned:
        wire.feed(wire.b, seen)
    made = [e for who, e in wire.log if who == "tablet" and isinstance(e, io.Dial)]
    assert [d.addresses for d in made] == [ELSEWHERE]
    assert learned, "mallory's node took part in the handshake"
    assert leaked(TABLET, learned) == leaked(PHONE, learned) == []
    assert not any(phone.id in blob for blob in learned)
    assert refusals(wire, "mallory") == ["the peer is not a device this one knows"]

    # Within the hour, nothing more; after it, one more probe; then after two hours.
    def probes_at(now: float) -> int:
        wire.now = now
        wire.feed(wire.b, io.AdvertSeen(f"renamed{now}", ELSEWHERE, 9, theirs.txt))
        return len([e for who, e in wire.log if who == "tablet" and isinstance(e, io.Dial)])

    start = NOW + 100
    assert probes_at(start + PROBE_AGAIN - 1) == 1
    assert probes_at(start + PROBE_AGAIN) == 2
    assert probes_at(start + 3 * PROBE_AGAIN - 1) == 2
    assert probes_at(start + 3 * PROBE_AGAIN) == 3


def test_a_node_seeking_a_member_never_probes_its_own_advert() -> None:
    """The tablet seeks the phone (which does not know it) and probes every
    covey advert it does not recognize: never its own, the current one or one
    withdrawn an hour before and reported late (a manual run on a real LAN
    showed a node dialing itself: "a connection with <its own address>
    failed")."""
    _, _, tablet = apart()
    wire = Wire(mallory_node(), Node(TABLET, [tablet]))
    first = advertise(wire, wire.b, NOW + 100)
    second = advertise(wire, wire.b, NOW + 100 + 3600)  # a new hour: a new name
    assert first.name != second.name
    withdrawn = [e.name for who, e in wire.log if who == "tablet" and isinstance(e, io.Withdraw)]
    assert first.name in withdrawn
    for seen in (second, first):
        wire.feed(wire.b, seen)
    assert [e for who, e in wire.log if who == "tablet" and isinstance(e, io.Dial)] == []
    # (A stranger's advert is probed: the tablet is seeking.)
    wire.feed(wire.b, io.AdvertSeen("theirs", ELSEWHERE, 9, first.txt))
    made = [e for who, e in wire.log if who == "tablet" and isinstance(e, io.Dial)]
    assert [d.addresses for d in made] == [ELSEWHERE]


def test_a_flood_of_adverts_gets_a_few_probes_at_a_time() -> None:
    _, _, tablet = apart()
    node = Node(TABLET, [tablet])
    effects = mallory_node().handle(io.Tick(), NOW, SeededRng("m2"))
    txt = next(e for e in effects if isinstance(e, io.Advertise)).txt
    made = []
    for i in range(300):
        seen = io.AdvertSeen(f"flood{i}", (f"192.0.2.{i % 250}",), 1000 + i, txt)
        made += dials(node.handle(seen, NOW + 1, SeededRng(f"f{i}")))
    assert 0 < len(made) <= MAX_PROBES  # (one member sought: one probe at a time)
    assert "Dial" not in kinds(Node(PHONE, [apart()[1]]).handle(seen, NOW + 1, SeededRng("p")))


def test_a_group_the_peer_does_not_know_us_in_is_introduced_on_an_ordinary_dial() -> None:
    """Two groups: the phone knows the tablet in one (so they find each other)
    but missed its add to the other. Before, that second group never synced
    between them; now the tablet's dial carries the introduction for it."""
    rng = SeededRng("two-groups")
    known = Group.create(LAPTOP, "home", "shared", NOW, rng)
    missed = Group.create(LAPTOP, "work", "shared", NOW, rng)
    for group in (known, missed):
        group.add(PHONE.record_bytes, "member", NOW + 1, rng)
    missed_by_phone = Group.replica(PHONE, missed.id, [op.raw for op in missed.log.order])
    known.add(TABLET.record_bytes, "member", NOW + 2, rng)
    missed.add(TABLET.record_bytes, "member", NOW + 2, rng)
    replicas = {
        who: [Group.replica(who, g.id, [op.raw for op in g.log.order]) for g in (known, missed)]
        for who in (PHONE, TABLET)
    }
    replicas[PHONE][1] = missed_by_phone
    wire = Wire(Node(PHONE, replicas[PHONE]), Node(TABLET, replicas[TABLET]))
    phone_advert = advertise(wire, wire.a, NOW + 100)
    wire.feed(wire.b, phone_advert)
    assert wire.b.adverts[phone_advert.name].device == PHONE.record  # recognized
    assert TABLET.device_id.raw in missed_by_phone.state.members
    assert ops_of(missed_by_phone) == ops_of(replicas[TABLET][1])
    assert wire.b.peers[PHONE.device_id.raw].knows == {known.id, missed.id}


def test_an_introduction_is_not_sent_to_a_device_shown_to_know_us() -> None:
    laptop, phone, tablet = apart()
    me, phone_id = TABLET.device_id.raw, PHONE.device_id.raw
    assert introduction.chain(tablet, me, LAPTOP.device_id.raw) == []  # it added us
    assert introduction.chain(tablet, me, phone_id)  # nothing shows the phone knows us
    known = Group.replica(PHONE, laptop.id, [op.raw for op in laptop.log.order])
    known.rotate(NOW + 5, SeededRng("phone-writes"))  # the phone writes after our add
    tablet.receive(known.log.order[-1].raw)
    assert introduction.chain(tablet, me, phone_id) == []
    with pytest.raises(PeerRefused):  # an introduction that does not add the dialer
        introduction.admit(
            {phone.id: phone},
            phone_id,
            MALLORY.device_id.raw,
            [(phone.id, [laptop.log.order[-1].raw])],
            lambda record: None,
        )
