"""`covey group ...`: create, list, show, rotate and shred groups.

`covey group role` and `covey group leave` live with the other commands
that manage a group's devices, in `covey.cli.members`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import (
    Context,
    common_options,
    confirm,
    node_command,
    run,
    unlock,
)

if TYPE_CHECKING:
    from covey.core.group import Group


@click.group(name="group")
def group_cli() -> None:
    """Create and inspect groups of devices that share keys."""


def group_document(group: Group) -> dict[str, Any]:
    """A group's state as JSON-friendly values (what the node's replies carry)."""
    from covey.core.node.views import describe

    return describe(group)


@group_cli.command(name="create")
@click.argument("name")
@click.option(
    "--history",
    type=click.Choice(["shared", "forward"]),
    default="shared",
    show_default=True,
    help="shared: new members can read what the group stored before they joined; "
    "forward: only what is stored from then on.",
)
@common_options
def create(ctx: Context, name: str, history: str) -> None:
    """Create a group with this device as its founder and first admin."""
    from covey.core.identity import validate_name
    from covey.core.node import io

    name = validate_name(name, "a group name")
    document = node_command(
        ctx,
        io.CreateGroup(name, history),  # type: ignore[arg-type]
        needs="none",
    )
    ctx.emit(
        document,
        lambda: click.echo(
            f"Created group {name!r} ({history} history), id {document['group_id'][:16]}."
        ),
    )


@group_cli.command(name="list")
@common_options
def list_groups(ctx: Context) -> None:
    """List the groups this device holds."""
    from covey.store.sqlite import Store

    async def go() -> list[tuple[bytes, str]]:
        async with Store.open(ctx.home) as store:
            return await store.list_groups()

    groups = run(go)

    def human() -> None:
        if not groups:
            click.echo("No groups yet: `covey group create NAME` makes one.")
        for group_id, name in groups:
            click.echo(f"{name}  {group_id.hex()[:16]}")

    ctx.emit({"groups": [{"name": n, "group_id": g.hex()} for g, n in groups]}, human)


async def load(store: Any, name: str, passphrase: str | None) -> tuple[Group, bytes]:
    """A stored group by name (or ID prefix), unlocked: (group, data key)."""
    group_id, _ = await store.find_group(name)
    me, data_key = await unlock(store, passphrase)
    return await store.load_group(group_id, me, data_key), data_key


@group_cli.command(name="show")
@click.argument("name")
@common_options
def show(ctx: Context, name: str) -> None:
    """Show a group: members, roles, the current epoch, heads.

    Read from the view the store keeps beside the ops (no replay, no
    passphrase: nothing secret is shown).
    """
    from covey.store import reader

    group_id, stored = reader.group_view(ctx.home, name)
    if stored is None:
        from covey.store.sqlite import Store

        async def rebuild() -> dict[str, Any]:
            async with Store.open(ctx.home) as store:
                return await store.rebuild_view(group_id)

        stored = run(rebuild)
    document = stored

    def human() -> None:
        epoch = document["epoch"]
        click.echo(f"Group {document['name']!r}  id {document['group_id']}")
        click.echo(f"History: {document['history']}   ops: {document['ops']}")
        click.echo(
            f"Epoch {epoch['number']} ({epoch['id'][:16]})"
            + ("" if epoch["key_held"] else "  [key not held]")
            + ("  [needs a healing rotation]" if epoch["needs_healing"] else "")
        )
        click.echo("Members:")
        for member in document["members"]:
            mark = " (this device)" if member["this_device"] else ""
            click.echo(f"  {member['role']:<7} {member['name']}{mark}")
            click.echo(f"          {member['device_id']}")
            click.echo(f"          {' '.join(member['safety_words'])}")
        for notice in document["notices"]:
            click.echo(f"Note: {notice}")

    ctx.emit(document, human)


@group_cli.command(name="rotate")
@click.argument("name")
@common_options
def rotate(ctx: Context, name: str) -> None:
    """Start a new epoch: a fresh key, wrapped for each current member."""
    from covey.core.node import io

    document = node_command(ctx, io.Rotate(name), needs="named", group=name)
    ctx.emit(document, lambda: click.echo(f"Rotated: epoch {document['epoch']['number']}."))


@group_cli.command(name="shred")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
def shred(ctx: Context, name: str, yes: bool) -> None:
    """Delete a group and its keys from this device: its data no longer opens here."""
    from covey.core.node import io
    from covey.store.sqlite import Store

    confirm(yes, f"Delete group {name!r} and every key of it from this device?", "shredding")

    async def find() -> bytes:
        async with Store.open(ctx.home) as store:
            group_id, _ = await store.find_group(name)
            return group_id

    group_id = run(find)  # (a missing group fails here, before any passphrase is asked)
    node_command(ctx, io.Shred(group_id.hex()), needs="named", group=group_id.hex())
    ctx.emit(
        {"ok": True, "shredded": group_id.hex()},
        lambda: click.echo(f"Shredded group {name!r}: its keys are gone from this device."),
    )


COMMANDS = (group_cli,)
