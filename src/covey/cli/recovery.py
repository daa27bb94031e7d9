"""Recovery shares: `covey recovery setup`, `covey recovery status` (PROTOCOL.md 19).

`setup` deals a fresh recovery secret into SLIP-39 shares: one per holder
person (sealed in the log to each of their devices) and paper shares,
printed here once (covey keeps no copy: write each down). `status` reads
the stored log (no passphrase): holders, threshold, digests, the
dealing's short ID (printed on every paper share), and whether it can
still be used.
"""

from __future__ import annotations

import re
from typing import Any, Final

import click

from covey.cli.common import Context, common_options, node_command, run, when
from covey.cli.members import read_group

#: "30s", "90m", "72h", "3d".
_DURATION: Final = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> int:
    """Seconds of a veto window: "72h", "3d", "90m", "60s"; a minute to 30 days."""
    from covey.core.ops import MAX_VETO, MIN_VETO
    from covey.errors import InvalidArgument

    match = _DURATION.match(text.strip().lower())
    if not match:
        raise InvalidArgument("a veto window looks like 72h, 3d or 90m")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not MIN_VETO <= seconds <= MAX_VETO:
        raise InvalidArgument("a veto window is from a minute to 30 days")
    return seconds


@click.group(name="recovery")
def recovery_cli() -> None:
    """Recovery shares: a quorum of holders brings a device in, or a person back."""


@recovery_cli.command(name="setup")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@click.option(
    "--threshold", "-k", type=int, required=True, help="How many shares recover (at least 2)."
)
@click.option(
    "--paper",
    type=int,
    default=0,
    show_default=True,
    help="Paper shares to print now (fewer than the threshold).",
)
@click.option(
    "--holder",
    "holders",
    multiple=True,
    help="A person holding a share (a person's name, or a device of theirs);"
    " repeat; default: every person in the group.",
)
@click.option(
    "--veto",
    default="72h",
    show_default=True,
    help="How long a recovery waits for a veto (60s to 30d).",
)
@common_options
def setup(
    ctx: Context,
    group_name: str,
    threshold: int,
    paper: int,
    holders: tuple[str, ...],
    veto: str,
) -> None:
    """Deal new recovery shares for a group: one per holder person, and paper.

    Any THRESHOLD shares together recover; paper alone never does. The
    paper shares are printed once, here: write each down (covey keeps no
    copy). A new dealing replaces the last one: its shares, paper included,
    stop working.
    """
    from covey.core import escrow, roster
    from covey.core.node import io

    window = parse_window(veto)
    log, me = read_group(ctx, group_name)
    roster.check_deal(log, me)
    assert log.state is not None
    persons = [roster.resolve_holder(log.state, text) for text in holders] or None
    escrow.plan(log.state, threshold, paper, window, persons)  # (refused here, before asking)
    document = node_command(
        ctx,
        io.SetupRecovery(log.group_id.hex(), threshold, paper, holders, window),
        needs="named",
        group=log.group_id.hex(),
    )

    def human() -> None:
        dealing = document["dealing"]
        people = [h["person"] for h in dealing["holders"] if not h["paper"]]
        click.echo(
            f"Recovery for {document['name']!r}: any {dealing['threshold']} of"
            f" {dealing['shares']} shares recover (dealing {dealing['short_id']})."
        )
        click.echo(f"Held by: {', '.join(people)}.")
        for share in document["paper_shares"]:
            click.echo(
                f"\nPaper share {share['slot']} of dealing {dealing['short_id']}"
                f" ({len(share['words'])} words):"
            )
            words = share["words"]
            for start in range(0, len(words), 11):
                click.echo("  " + " ".join(words[start : start + 11]))
        if document["paper_shares"]:
            click.echo(
                "\nWrite each paper share down now and keep it apart from your devices:"
                " covey keeps no copy, and this is the only time it is shown."
            )

    ctx.emit(document, human)


@recovery_cli.command(name="status")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@common_options
def status(ctx: Context, group_name: str) -> None:
    """The group's recovery shares: holders, threshold, digests, the last dealing."""
    from covey.core import roster
    from covey.store.sqlite import Store

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            me = (await store.device_record()).device_id.raw
            group_id, _ = await store.find_group(group_name)
            log = await store.load_log(group_id)
        return roster.describe_dealing(log, me)

    document = run(go)

    def human() -> None:
        dealing = document["dealing"]
        for request in document["requests"]:
            show_request(request)
        if dealing is None:
            click.echo(
                f"{document['group']!r} has no recovery shares:"
                f" `covey recovery setup -g {roster.command_arg(document['group'])}"
                " --threshold 2` deals them."
            )
            return
        click.echo(
            f"{document['group']}: dealing {dealing['short_id']} by {dealing['dealer']}"
            f" at {when(dealing['dealt_at'])}: any {dealing['threshold']} of"
            f" {dealing['shares']} shares ({dealing['paper']} on paper);"
            f" veto window {dealing['veto_seconds'] // 3600} h"
            f" {dealing['veto_seconds'] % 3600 // 60} min"
        )
        if dealing["void"]:
            click.echo(
                f"  NOT USABLE: {dealing['void']}. Deal new shares (`covey recovery setup`);"
                " the paper shares of this dealing no longer work."
            )
        for holder in dealing["holders"]:
            digest = holder["digest"][:16]
            if holder["paper"]:
                click.echo(f"  share {holder['slot']:>2}  paper           digest {digest}")
                continue
            devices = ", ".join(
                d["name"] + ("" if d["member"] else " (no longer a member)")
                for d in holder["devices"]
            )
            click.echo(
                f"  share {holder['slot']:>2}  {holder['person']:<15} digest {digest}  on {devices}"
            )
        if dealing["this_device_holds"]:
            click.echo(f"  This device holds share {dealing['this_device_holds']}.")

    ctx.emit(document, human)


def show_request(request: dict[str, Any]) -> None:
    """One admission or recovery, pending ones first and loudly."""
    what = (
        f"{request['device']!r} to join"
        if request["kind"] == "admit"
        else f"{request['device']!r} to recover {request['person']!r}, replacing their devices"
    )
    approved = ", ".join(request["approved_by"]) or "nobody"
    paper = f" and {len(request['paper'])} paper share(s)" if request["paper"] else ""
    if request["status"] != "pending":
        click.echo(f"{request['status'].capitalize()}: {what} (approved by {approved}{paper}).")
        return
    click.echo(
        f"PENDING since {when(request['claimed_at'])}: {what}; approved by {approved}{paper};"
        f" witnessed by {', '.join(request['witnesses']) or 'nobody yet'}."
    )
    click.echo(f"  Its safety words: {' '.join(request['safety_words'])}")
    if request["this_device_may_veto"]:
        click.echo(
            f"  If you did not ask for this: `covey recovery veto -g GROUP {request['claim'][:12]}`"
        )


@recovery_cli.command(name="veto")
@click.argument("request", required=False, default="")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@common_options
def veto(ctx: Context, request: str, group_name: str, yes: bool) -> None:
    """Stop a pending admission (an admin) or a recovery of your own person.

    REQUEST is the start of its ID as `covey recovery status` shows it; with
    none, the one pending request this device may stop. A veto wins over a
    completion it crosses: nobody can override it.
    """
    from covey.cli.common import confirm
    from covey.cli.members import told_lines
    from covey.core import roster
    from covey.core.node import io

    log, me = read_group(ctx, group_name)
    assert log.state is not None
    claim = roster.resolve_claim(log.state, me, request)
    shown = roster.claim_document(log, log.state.claims[claim], me)
    confirm(
        yes,
        f"Stop the request of {shown['device']!r}"
        + (" to join" if shown["kind"] == "admit" else f" to recover {shown['person']!r}")
        + f" in {log.state.name!r}?",
        "vetoing a request",
    )
    document = node_command(
        ctx,
        io.VetoClaim(log.group_id.hex(), claim.hex()),
        needs="named",
        group=log.group_id.hex(),
    )

    def human() -> None:
        click.echo(f"Vetoed: {shown['device']!r} will not be let in by this request.")
        for line in told_lines(document, "it"):
            click.echo(line)

    ctx.emit(document, human)


COMMANDS = (recovery_cli,)
