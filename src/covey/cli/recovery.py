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

from covey.cli.common import Context, common_options, interactive, node_command, run, when
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


# --- asking holders, and approving ---------------------------------------------------


def read_words_file(path: str) -> tuple[str, ...]:
    """Paper shares from a file: one SLIP-39 share per line (blank lines skipped)."""
    from covey.errors import InvalidArgument

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def prompt_words() -> tuple[str, ...]:
    """Paper shares typed at a prompt, one per line, an empty line to end."""
    typed: list[str] = []
    while True:
        line = click.prompt(
            f"Paper share {len(typed) + 1} (its words on one line; empty when done)",
            default="",
            show_default=False,
            err=True,
        )
        if not line.strip():
            return tuple(typed)
        typed.append(line.strip())


def ask_and_wait(ctx: Context, action: Any, lifetime: int, port: int) -> None:
    """Show the code and this device's safety words; say each look and approval;
    end when the request is claimed (or the code expires)."""
    from covey.cli.pairing import Events
    from covey.core.node import io  # noqa: F401  (the action's module)

    events = Events(ctx)

    def progress(reply: dict[str, Any]) -> None:
        data = reply.get("data") or {}
        if reply.get("error") is not None:
            return
        event = data.get("event")
        if event == "asking":
            what = (
                f"to join {data['group']!r}"
                if data["kind"] == "admit"
                else f"to recover {data['person']!r} in {data['group']!r}"
            )
            events.emit(
                "asking",
                f"Asking the share holders of {data['group']!r} {what}.\n"
                f"Code: {data['code']}   (valid {lifetime // 60} min)\n"
                f"On a holder's device: covey recovery approve {data['code']}\n"
                f"This device's safety words (the holder must see the same):\n"
                f"  {' '.join(data['safety_words'])}\n"
                "Waiting for approvals (Ctrl-C stops) ...",
                code=data["code"],
                kind=data["kind"],
                group=data["group"],
                person=data["person"],
                safety_words=data["safety_words"],
            )
        elif event == "looked":
            events.emit(
                "looked", f"{data['holder']!r} looked at the request.", holder=data["holder"]
            )
        elif event == "approved":
            events.emit(
                "approved",
                f"{data['holder']!r} approved ({data['shares']} of {data['threshold']}).",
                holder=data["holder"],
                approvers=data["approvers"],
            )

    document = node_command(
        ctx,
        action,
        needs="all",
        network=True,
        listen=True,
        port=port,
        on_reply=progress,
    )
    hours = document["window_seconds"] / 3600
    stopper = "an admin" if document["kind"] == "admit" else f"a device of {document['person']!r}"
    events.emit(
        "claimed",
        f"Claimed in {document['group']!r}, approved by {', '.join(document['approved_by'])}"
        f"{' and paper' if document['paper'] else ''}. The members complete it after"
        f" {hours:g} h unless {stopper} vetoes it; keep `covey up` running here so that"
        " they can reach this device.",
        **{k: document[k] for k in ("group", "kind", "person", "claim", "window_seconds")},
    )


@click.command(name="request-join")
@click.option("--group", "-g", "group_name", required=True, help="The group to join.")
@click.option("--expires", default="1h", show_default=True, help="How long the code works.")
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: any).")
@common_options
def request_join(ctx: Context, group_name: str, expires: str, port: int) -> None:
    """Ask a group's share holders to admit this device while no admin is around.

    Shows a code and this device's safety words; each holder runs `covey
    recovery approve CODE`. With K holders' approvals the request is
    claimed; the members complete it after the group's veto window, unless
    an admin vetoes it.
    """
    from covey.cli.pairing import parse_duration
    from covey.core.identity import validate_name
    from covey.core.node import io

    lifetime = parse_duration(expires)
    name = validate_name(group_name, "a group name")
    ask_and_wait(ctx, io.AskHolders(name, None, lifetime), lifetime, port)


@click.command(name="recover")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@click.option("--person", required=True, help="The person this device recovers.")
@click.option(
    "--words-file",
    type=click.Path(dir_okay=False),
    help="Paper shares, one per line (else asked for in a terminal).",
)
@click.option("--expires", default="1h", show_default=True, help="How long the code works.")
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: any).")
@common_options
def recover(
    ctx: Context,
    group_name: str,
    person: str,
    words_file: str | None,
    expires: str,
    port: int,
) -> None:
    """Bring a person back after every device of theirs is lost: holders and paper.

    Shows a code; holders run `covey recovery approve CODE` and release
    their shares to this device; paper shares come from --words-file (one
    per line) or are typed. With K shares this device claims the person's
    place; the members complete it after the veto window (any device of the
    person can stop it), and the person's old devices are removed.
    """
    from covey.cli.pairing import parse_duration
    from covey.core import shares
    from covey.core.identity import validate_name
    from covey.core.node import io

    lifetime = parse_duration(expires)
    name = validate_name(group_name, "a group name")
    whose = validate_name(person, "a person's name")
    if words_file is not None:
        words = read_words_file(words_file)
        labels = [f"line {i} of {words_file}" for i in range(1, len(words) + 1)]
    elif interactive():
        words = prompt_words()
        labels = [f"the {i}th share typed" for i in range(1, len(words) + 1)]
    else:
        words, labels = (), []
    for text, label in zip(words, labels, strict=True):
        shares.parse_words(text, label=label)  # (a mistyped word: named here, before asking)
    ask_and_wait(ctx, io.AskHolders(name, whose, lifetime, words), lifetime, port)


@recovery_cli.command(name="approve")
@click.argument("code")
@click.option("--yes", "-y", is_flag=True, help="Approve without asking (scripts).")
@common_options
def approve(ctx: Context, code: str, yes: bool) -> None:
    """Approve, as a holder, the request of the device showing CODE.

    First looks: shows the asking device's name and safety words and what it
    asks (compare them with what it shows); after confirmation (--yes in
    scripts) approves it, and for a recovery releases this device's share
    to it.
    """
    from covey.cli.common import confirm
    from covey.core.node import io

    looked = node_command(ctx, io.ApproveRequest(code, ""), needs="all", network=True)
    what = (
        f"to join {looked['group']!r}"
        if looked["kind"] == "admit"
        else f"to recover {looked['person']!r} in {looked['group']!r}"
    )
    if not ctx.json:
        click.echo(
            f"{looked['device']!r} ({looked['device_id'][:13]}) asks {what}.\n"
            f"Its safety words: {' '.join(looked['safety_words'])}"
        )
    confirm(
        yes,
        "Does the asking device show the same safety words, and do you approve?",
        "approving",
    )
    document = node_command(
        ctx, io.ApproveRequest(code, looked["device_id"]), needs="all", network=True
    )

    if document["event"] != "approved":
        from covey.errors import NotAllowed

        raise NotAllowed("the device that answered was not the one shown: nothing was approved")

    def human() -> None:
        release = " and released this device's share to it" if looked["kind"] == "recover" else ""
        claimed = " The request is now claimed." if document.get("claimed") else ""
        click.echo(f"Approved{release}.{claimed}")

    ctx.emit(document, human)


COMMANDS = (recovery_cli, request_join, recover)
