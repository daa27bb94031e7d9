"""Whose devices are whose: `covey person set`, `covey person rename`.

A group's people (PROTOCOL.md 6.4) are the admins' word: which devices are
one person's decides, once recovery exists, who may veto that person's
recovery and which devices a recovery replaces. As for every change, the
command checks it against the stored log first (no passphrase) and the
node makes it (`covey.cli.common.node_command`).
"""

from __future__ import annotations

import click

from covey.cli.common import Context, common_options, node_command
from covey.cli.members import read_group, told_lines


@click.group(name="person")
def person_cli() -> None:
    """Say whose devices are whose in a group (`covey devices` shows people)."""


@person_cli.command(name="set")
@click.argument("device")
@click.argument("person")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@common_options
def set_person(ctx: Context, device: str, person: str, group_name: str) -> None:
    """Make DEVICE one of PERSON's devices (a person of the group by name, or a new one).

    DEVICE is named as for `covey remove`: its name, the start of its device
    ID, or its safety words. Only an admin can do this.
    """
    from covey.core import roster
    from covey.core.identity import validate_name
    from covey.core.node import io

    log, me = read_group(ctx, group_name)
    assert log.state is not None
    target = roster.resolve(log.state, device)
    person = validate_name(person, "a person's name")
    roster.check_place_person(log, me, target, person)
    existing = roster.find_person(log.state, person)
    who = roster.label(log.state.members[target].record)
    group = log.state.name
    document = node_command(
        ctx,
        io.PlacePerson(log.group_id.hex(), target, person),
        needs="named",
        group=log.group_id.hex(),
    )

    def human() -> None:
        new = "" if existing is not None else " (a new person of the group)"
        click.echo(f"{who} is now {person}'s device in {group!r}{new}.")
        for line in told_lines(document, "it"):
            click.echo(line)

    ctx.emit(document, human)


@person_cli.command(name="rename")
@click.argument("person")
@click.argument("name")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@common_options
def rename_person(ctx: Context, person: str, name: str, group_name: str) -> None:
    """Call PERSON by NAME from now on, in this group. Only an admin can do this."""
    from covey.core.node import io

    log, _ = read_group(ctx, group_name)
    group = log.state.name if log.state is not None else group_name
    document = node_command(
        ctx,
        io.RenamePerson(log.group_id.hex(), person, name),
        needs="named",
        group=log.group_id.hex(),
    )

    def human() -> None:
        click.echo(f"{person} is now called {document['renamed']['name']} in {group!r}.")
        for line in told_lines(document, "it"):
            click.echo(line)

    ctx.emit(document, human)


COMMANDS = (person_cli,)
