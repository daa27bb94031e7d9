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

from covey.cli.common import Context, common_options, node_command

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
    "--port", type=int, default=0, help="TCP port to listen on (default: any; not with covey up)."
)
@common_options
def invite(ctx: Context, group_name: str, role: str, expires: str, port: int) -> None:
    """Invite a device: print a code (and a QR code), wait for it to join.

    With `covey up` running, its node offers the invitation (on its own
    port); otherwise this command listens until the device joined, the code
    expired, or three wrong codes were tried.
    """
    from covey.cli.members import read_group
    from covey.core import roster
    from covey.core.node import io

    lifetime = parse_duration(expires)
    # Only an admin invites: refused here, naming the admins, before any
    # passphrase or network (the node checks again).
    log, me = read_group(ctx, group_name)
    roster.check_invite(log, me)
    events = Events(ctx)

    def progress(reply: dict[str, Any]) -> None:
        data = reply.get("data") or {}
        if reply.get("error") is not None:
            return
        if data.get("event") == "invitation":
            events.emit(
                "invitation",
                f"On the new device, run:  covey join {data['code']}",
                code=data["code"],
                link=data["link"],
                expires=data["expires"],
                port=data.get("port", 0),
            )
            if not ctx.json:
                show_qr(data["link"])
                click.echo("Waiting for the device to join ...")
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
        io.Invite(group_name, role, lifetime),  # type: ignore[arg-type]
        needs="named",
        group=group_name,
        network=True,
        listen=True,
        port=port,
        on_reply=progress,
    )
    events.emit(
        "joined",
        f"{joined['device']!r} joined. Safety words (compare if you like): "
        + " ".join(joined["sas"]),
        device=joined["device"],
        sas=joined["sas"],
        group=joined["group"],
    )


def show_qr(link: str) -> None:
    import io

    import segno

    qr = io.StringIO()
    segno.make(link, error="l").terminal(out=qr, compact=True)
    click.echo("or scan this with covey:")
    click.echo(qr.getvalue())


@click.command()
@click.argument("code", required=False)
@click.option("--link", help="The link from the inviter's QR code, instead of a code.")
@click.option("--address", help="HOST:PORT of the inviter, instead of looking on the LAN.")
@click.option("--timeout", type=float, default=JOIN_TIMEOUT, show_default=True)
@common_options
def join(
    ctx: Context, code: str | None, link: str | None, address: str | None, timeout: float
) -> None:
    """Join a group with the code (or link) another device shows.

    The inviter is found on the LAN by its advert (or reached at --address).
    Anyone can copy an advert, so a device that answers first may be an
    impostor: it cannot pass the handshake without the code, and the next
    advert is tried, up to three handshakes in all.
    """
    from covey.core.node import io
    from covey.core.pairing import parse_code, parse_link
    from covey.errors import InvalidArgument

    if (code is None) == (link is None):
        raise InvalidArgument("give either a code or --link")
    # A code that does not parse fails here, before any passphrase or network.
    parse_code(code) if code is not None else parse_link(link or "")
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
        io.Join(code=code, link=link, address=target, timeout=timeout),
        needs="all",
        network=target is None,
    )
    events = Events(ctx)
    if joined.get("event") == "already_member":
        events.emit(
            "already_member",
            f"This device is already a member of {joined['group']!r} (the inviter,"
            f" {joined['inviter']!r}, says so too): nothing was changed, and the code"
            " still works for another device.",
            group=joined["group"],
            group_id=joined["group_id"],
            inviter=joined["inviter"],
        )
        return
    events.emit(
        "joined",
        f"Joined {joined['group']!r} (invited by {joined['inviter']!r}). "
        "Safety words (compare if you like): " + " ".join(joined["sas"]),
        group=joined["group"],
        group_id=joined["group_id"],
        inviter=joined["inviter"],
        sas=joined["sas"],
    )


COMMANDS = (invite, join)
