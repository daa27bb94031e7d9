"""`covey invite` and `covey join`: bring a new device into a group on the LAN.

Both run for a while; with `--json` they print one JSON object per line as
things happen (for `invite`: the code and link first, then each failed try,
then the outcome), so a script can read the code before the command ends.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from covey.cli.common import Context, common_options, interactive, node_command, when

#: Seconds a joiner looks for the inviter on the LAN.
JOIN_TIMEOUT = 30.0
DURATION = re.compile(r"^(\d+)([smh]?)$")


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "10m" or "1h"."""
    from covey.errors import InvalidArgument

    match = DURATION.match(text.strip().lower())
    if not match:
        raise InvalidArgument("a duration looks like 90s, 10m or 1h")
    value, unit = int(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if not 10 <= seconds <= 24 * 3600:
        raise InvalidArgument("an invitation lasts from 10 seconds to 24 hours")
    return seconds


class Events:
    """Progress for people (stderr/stdout lines) or scripts (JSON lines)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def emit(self, event: str, human: str, **data: Any) -> None:
        if self.ctx.json:
            click.echo(json.dumps({"event": event, **data}), nl=True)
        else:
            click.echo(human)


@click.command()
@click.option("--group", "-g", "group_name", required=True, help="The group to invite into.")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@click.option("--expires", default="10m", show_default=True, help="How long the code works.")
@click.option(
    "--person",
    help="Whose device it is: a person of the group by name, or a new one"
    " (default: the person the device proposes, `covey init --person`).",
)
@click.option(
    "--port", type=int, default=0, help="TCP port to listen on (default: any; not with covey up)."
)
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask whether the pairing words match (terminal)."
)
@common_options
def invite(
    ctx: Context,
    group_name: str,
    role: str,
    expires: str,
    person: str | None,
    port: int,
    yes: bool,
) -> None:
    """Invite a device: print a code, a link and its QR code; wait for it to join.

    Says which group, role and expiry the code is for. With `covey up`
    running, its node offers the invitation (on its own port); otherwise
    this command listens until the device joined, the code expired, or
    three wrong codes were tried. Once a device joined, both show the same
    four pairing words: in a terminal this command asks whether they match,
    and a "no" removes the device at once.
    """
    from covey.cli.members import read_group
    from covey.core import roster
    from covey.core.node import io
    from covey.core.roster import command_arg

    lifetime = parse_duration(expires)
    # Only an admin invites: refused here, naming the admins, before any
    # passphrase or network (the node checks again).
    log, me = read_group(ctx, group_name)
    roster.check_invite(log, me)
    if person is not None:
        from covey.core.identity import validate_name

        person = validate_name(person, "a person's name")
        assert log.state is not None
        roster.find_person(log.state, person)  # (refuses a name two people have)
    events = Events(ctx)

    def progress(reply: dict[str, Any]) -> None:
        data = reply.get("data") or {}
        if reply.get("error") is not None:
            return
        if data.get("event") == "invitation":
            events.emit(
                "invitation",
                invitation_lines(data, lifetime),
                code=data["code"],
                link=data["link"],
                group=data["group"],
                role=data["role"],
                expires=data["expires"],
                port=data.get("port", 0),
                relays=data.get("relays", []),
            )
            if not ctx.json:
                show_qr(data["link"])
                click.echo("Waiting for the device to join (Ctrl-C stops) ...")
        elif data.get("event") == "already_member":
            events.emit(
                "already_member",
                f"{data['device']!r} ({data['device_id'][:13]}) is already a member of"
                f" {data['group']!r}: nothing was added, and the code still works for another"
                " device. Still waiting (Ctrl-C stops) ...",
                device=data["device"],
                device_id=data["device_id"],
                group=data["group"],
            )
        elif data.get("event") == "attempt_failed":
            events.emit(
                "attempt_failed",
                f"A device tried and failed: {data['reason']}",
                reason=data["reason"],
                attempts_left=data["attempts_left"],
            )

    joined = node_command(
        ctx,
        io.Invite(group_name, role, lifetime, person),  # type: ignore[arg-type]
        needs="named",
        group=group_name,
        network=True,
        listen=True,
        port=port,
        on_reply=progress,
    )
    short = joined["device_id"][:13]
    words = " ".join(joined["pairing_words"])
    remove = f"covey remove {short} -g {command_arg(joined['group'])}"
    whose = f", {joined['person']}'s device," if joined.get("person") else ""
    events.emit(
        "joined",
        f"{joined['device']!r} ({short}){whose} joined {joined['group']!r} as {article(role)}.\n"
        f"Pairing words: {words}\n"
        f"{joined['device']!r} shows the same four words. If they differ, it is not the"
        f" device you meant: run `{remove}` at once.",
        device=joined["device"],
        device_id=joined["device_id"],
        person=joined.get("person"),
        proposed_person=joined.get("proposed_person"),
        pairing_words=joined["pairing_words"],
        group=joined["group"],
        group_id=joined["group_id"],
        role=role,
        remove=remove,
    )
    proposed = joined.get("proposed_person")
    if proposed and not ctx.json:
        click.echo(
            f"It proposed to be {proposed!r}'s device, a name the group has (or one much like"
            f" it), so it is a person of its own for now. If it is {proposed}'s: `covey person"
            f" set {short} {command_arg(proposed)} -g {command_arg(joined['group'])}`."
        )
    if ctx.json or yes or not interactive():
        return
    question = f"Does {joined['device']!r} show the same pairing words?"
    if click.confirm(question, default=None, err=True):
        click.echo("Good: the device that joined is the one you meant.")
        return
    # Not the device in the user's hand: whoever it is leaves at once.
    from covey.cli.members import told_lines
    from covey.core.identity import DeviceId

    document = node_command(
        ctx,
        io.RemoveDevice(joined["group_id"], DeviceId.parse(joined["device_id"]).raw),
        needs="named",
        group=joined["group_id"],
    )
    click.echo(
        f"Removed {joined['device']!r} ({short}) from {joined['group']!r}: the others have a"
        f" new key (epoch {document['epoch']['number']}). Invite the right device again."
    )
    for line in told_lines(document, "the removal"):
        click.echo(line)


def duration_words(seconds: int) -> str:
    """`90 seconds`, `1 minute`, `10 minutes`, `2 hours` (the largest unit that divides it)."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def article(role: str) -> str:
    return "an admin" if role == "admin" else "a member"


def invitation_lines(data: dict[str, Any], lifetime: int) -> str:
    """What `covey invite` prints first: the group, role and expiry; the code and the link."""
    from covey.core.roster import command_arg

    lines = (
        f"Invitation to {data['group']!r} as {article(data['role'])}, for one device, until"
        f" {when(data['expires'])} ({duration_words(lifetime)}; 3 wrong codes end it).\n"
        f"On the new device, run:\n"
        f"  covey join {data['code']}\n"
    )
    relays = data.get("relays") or []
    if relays:
        lines += (
            "or, on another network (the code meets this device at the group's relay):\n"
            f"  covey join {data['code']} --relay {command_arg(relays[0])}\n"
        )
    return lines + (
        "or, with the link (the QR code below holds the same link"
        + (", and the relay" if relays else "")
        + f"):\n  covey join --link {command_arg(data['link'])}"
    )


def show_qr(link: str) -> None:
    import io

    import segno

    qr = io.StringIO()
    segno.make(link, error="l").terminal(out=qr, compact=True)
    click.echo(qr.getvalue())


@click.command()
@click.argument("code", required=False)
@click.option("--link", help="The link from the inviter's QR code, instead of a code.")
@click.option("--address", help="HOST:PORT of the inviter, instead of looking on the LAN.")
@click.option(
    "--relay", "relay", help="Meet the inviter at this relay (a link `covey invite` printed)."
)
@click.option("--timeout", type=float, default=JOIN_TIMEOUT, show_default=True)
@common_options
def join(
    ctx: Context,
    code: str | None,
    link: str | None,
    address: str | None,
    relay: str | None,
    timeout: float,
) -> None:
    """Join a group with the code (or link) another device shows.

    The inviter is found on the LAN by its advert (or reached at --address),
    or, on another network, met at one of its group's relays (--relay, or
    the relay a link names). Anyone can copy an advert or write to a
    rendezvous, so whoever answers first may be an impostor: it cannot pass
    the handshake without the code, and the joiner tries again, up to three
    handshakes in all. The relay sees the handshake, never the code.
    """
    from covey.core.node import io
    from covey.core.pairing import link_relays, parse_code, parse_link
    from covey.core.relaylink import parse_link as parse_relay_link
    from covey.core.roster import command_arg
    from covey.errors import InvalidArgument

    if (code is None) == (link is None):
        raise InvalidArgument("give either a code or --link")
    # A code that does not parse fails here, before any passphrase or network.
    parse_code(code) if code is not None else parse_link(link or "")
    for text in [relay] if relay is not None else link_relays(link or ""):
        parse_relay_link(text)
    target: tuple[str, int] | None = None
    if address:
        host, _, port_text = address.rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgument("an address looks like 192.0.2.7:4242")
        target = (host.strip("[]"), int(port_text))
    if not 0 < timeout <= 3600:
        raise InvalidArgument("the timeout is from 1 second to an hour")
    joined = node_command(
        ctx,
        io.Join(code=code, link=link, address=target, timeout=timeout, relay=relay),
        needs="all",
        network=target is None and relay is None and not link_relays(link or ""),
    )
    events = Events(ctx)
    if joined.get("event") == "already_member":
        events.emit(
            "already_member",
            f"This device is already a member of {joined['group']!r} (the inviter,"
            f" {joined['inviter']!r}, says so too): nothing was changed, and the code"
            " still works for another device."
            if joined.get("had_group", True)
            else f"This device was a member of {joined['group']!r} already (an earlier"
            " pairing added it, and did not finish): it now holds the group and its keys."
            " The code still works for another device.",
            group=joined["group"],
            group_id=joined["group_id"],
            inviter=joined["inviter"],
        )
        return
    shred = f"covey group shred {command_arg(joined['group'])} --yes"
    events.emit(
        "joined",
        f"Joined {joined['group']!r} (invited by {joined['inviter']!r}).\n"
        f"Pairing words: {' '.join(joined['pairing_words'])}\n"
        f"{joined['inviter']!r} shows the same four words. If they differ, this is not the"
        f" group you meant: run `{shred}` here at once, and tell whoever invited you.",
        group=joined["group"],
        group_id=joined["group_id"],
        inviter=joined["inviter"],
        pairing_words=joined["pairing_words"],
        shred=shred,
    )


COMMANDS = (invite, join)
