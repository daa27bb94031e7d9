"""`covey group ...`: create, list, show and shred groups (local only for now)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import Context, common_options, interactive, now, run, unlock

if TYPE_CHECKING:
    from covey.core.group import Group


@click.group(name="group")
def group_cli() -> None:
    """Create and inspect groups of devices that share keys."""


def group_document(group: Group) -> dict[str, Any]:
    """A group's state as JSON-friendly values."""
    from covey.core.identity import DeviceId

    state = group.state
    me = group.me.device_id.raw
    return {
        "group_id": group.id.hex(),
        "name": state.name,
        "history": state.history,
        "members": [
            {
                "device_id": str(DeviceId(device)),
                "name": member.record.name,
                "role": member.role,
                "safety_words": member.record.safety_words,
                "this_device": device == me,
            }
            for device, member in sorted(state.members.items(), key=lambda item: item[1].seniority)
        ],
        "epoch": {
            "id": state.current_epoch.id.hex(),
            "number": len(state.epochs),
            "key_held": state.current_epoch.id in group.keys,
            "needs_healing": state.needs_healing,
        },
        "heads": sorted(head.hex() for head in group.log.heads),
        "ops": len(group.log),
        "equivocators": [str(DeviceId(device)) for device in state.equivocators],
        "notices": list(state.notices),
    }


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
    from covey.core.group import Group
    from covey.core.identity import validate_name
    from covey.entropy import system_rng
    from covey.store.sqlite import Store

    name = validate_name(name)

    async def go() -> Group:
        async with Store.open(ctx.home) as store:
            me, data_key = await unlock(store)
            group = Group.create(me, name, history, now(), system_rng)  # type: ignore[arg-type]
            await store.create_group(group, data_key, system_rng)
            return group

    group = run(go)
    ctx.emit(
        group_document(group),
        lambda: click.echo(
            f"Created group {name!r} ({history} history), id {group.id.hex()[:16]}."
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


async def load(store: Any, name: str) -> tuple[Group, bytes]:
    """A stored group by name (or ID prefix), unlocked: (group, data key)."""
    group_id, _ = await store.find_group(name)
    me, data_key = await unlock(store)
    return await store.load_group(group_id, me, data_key), data_key


@group_cli.command(name="show")
@click.argument("name")
@common_options
def show(ctx: Context, name: str) -> None:
    """Show a group: members, roles, the current epoch, heads."""
    from covey.store.sqlite import Store

    async def go() -> Group:
        async with Store.open(ctx.home) as store:
            group, _ = await load(store, name)
            return group

    group = run(go)
    document = group_document(group)

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
    from covey.entropy import system_rng
    from covey.store.sqlite import Store

    async def go() -> Group:
        async with Store.open(ctx.home) as store:
            group, data_key = await load(store, name)
            group.rotate(now(), system_rng)
            await store.save_group(group, data_key, system_rng)
            return group

    group = run(go)
    ctx.emit(
        group_document(group), lambda: click.echo(f"Rotated: epoch {len(group.state.epochs)}.")
    )


@group_cli.command(name="shred")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
def shred(ctx: Context, name: str, yes: bool) -> None:
    """Delete a group and its keys from this device: its data no longer opens here."""
    from covey.errors import InvalidArgument
    from covey.store.sqlite import Store

    if not yes:
        if not interactive():
            raise InvalidArgument("shredding needs confirmation: add --yes")
        if not click.confirm(
            f"Delete group {name!r} and every key of it from this device?", err=True
        ):
            raise InvalidArgument("not confirmed: nothing was changed")

    async def go() -> bytes:
        async with Store.open(ctx.home) as store:
            group_id, _ = await store.find_group(name)
            await store.shred_group(group_id)
            return group_id

    group_id = run(go)
    ctx.emit(
        {"ok": True, "shredded": group_id.hex()},
        lambda: click.echo(f"Shredded group {name!r}: its keys are gone from this device."),
    )


COMMANDS = (group_cli,)
