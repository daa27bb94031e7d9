"""The click application: the `covey` group and the commands it holds."""

from __future__ import annotations

import click

from covey import __version__
from covey.cli import (
    daemon,
    groups,
    identity,
    members,
    pairing,
    people,
    recovery,
    relay,
    sealing,
    sharing,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="covey", message="%(prog)s %(version)s")
def cli() -> None:
    """covey: share keys between your devices, with no server that can read them."""


for command in (
    *identity.COMMANDS,
    *groups.COMMANDS,
    *sealing.COMMANDS,
    *sharing.COMMANDS,
    *pairing.COMMANDS,
    *daemon.COMMANDS,
    *members.COMMANDS,
    *people.COMMANDS,
    *recovery.COMMANDS,
    *relay.COMMANDS,
):
    cli.add_command(command)
for command in members.GROUP_COMMANDS:  # covey group role, covey group leave
    groups.group_cli.add_command(command)
