"""Managing a group's devices: `covey devices`, `covey remove`, `covey group role`,
`covey group leave`.

A command first reads the group from the store, with no passphrase (ops are
stored in clear; only keys are sealed): it finds the device that DEVICE
names (`covey.core.roster.resolve`: its name, the start of its device ID,
or its safety words), checks the change as the node will, and asks for
confirmation in a terminal, so a mistake is caught before anything is
signed. The change itself is the node's: it goes to the running `covey up`
(or a node of the command's own) as an action, like every change
(`covey.cli.common.node_command`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import Context, common_options, confirm, node_command, run, when

if TYPE_CHECKING:
    from covey.core.log import GroupLog


def read_group(ctx: Context, name: str) -> tuple[GroupLog, bytes]:
    """(the group's log as stored, this device's ID): no passphrase needed."""
    from covey.store.sqlite import Store

    async def go() -> tuple[GroupLog, bytes]:
        async with Store.open(ctx.home) as store:
            me = (await store.device_record()).device_id.raw
            group_id, _ = await store.find_group(name)
            return await store.load_log(group_id), me

    result: tuple[GroupLog, bytes] = run(go)
    return result


def listing(entries: list[dict[str, str]]) -> str:
    return ", ".join(entry["name"] for entry in entries)


def told_lines(document: dict[str, Any], change: str) -> list[str]:
    """Who has heard of a change, and who must still (from the node's reply)."""
    lines = []
    if document["told"]:
        lines.append(f"Told: {listing(document['told'])}.")
    if document["to_tell"]:
        hint = "they learn of it when they next sync with a device that has it"
        if not document["syncing"]:
            hint += "; this device syncs only while `covey up` runs"
        lines.append(f"Still to hear of {change}: {listing(document['to_tell'])} ({hint}).")
    elif not document["told"]:
        lines.append("No other member to tell.")
    else:
        lines.append("Every other member has heard of it.")
    return lines


@click.command()
@click.argument("device")
@click.option("--group", "-g", "group_name", required=True, help="The group to remove it from.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
def remove(ctx: Context, device: str, group_name: str, yes: bool) -> None:
    """Remove DEVICE from a group: it opens nothing sealed for the group from now on.

    DEVICE is the device's name, the start of its device ID (4 characters or
    more, as `covey devices` shows it), or its eight safety words. Removing
    starts a new epoch (a fresh key for the members left). Asks for
    confirmation in a terminal; pass --yes otherwise. Only an admin can
    remove another device; to remove this one, use `covey group leave`.
    """
    from covey.core import roster
    from covey.core.node import io

    log, me = read_group(ctx, group_name)
    assert log.state is not None
    target = roster.resolve(log.state, device)
    roster.check_remove(log, me, target)
    who = roster.label(log.state.members[target].record)
    group = log.state.name
    confirm(
        yes,
        f"Remove {who} from {group!r}? It will open nothing sealed for the group from now on.",
        f"removing {who} from {group!r}",
    )
    document = node_command(
        ctx, io.RemoveDevice(log.group_id.hex(), target), needs="named", group=log.group_id.hex()
    )

    def human() -> None:
        epoch = document["epoch"]["number"]
        click.echo(f"Removed {who} from {group!r}: the others have a new key (epoch {epoch}).")
        for line in told_lines(document, "the removal"):
            click.echo(line)

    ctx.emit(document, human)


@click.command(name="role")
@click.argument("device")
@click.argument("role", type=click.Choice(["admin", "member"]))
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before this device gives up admin.")
@common_options
def role(ctx: Context, device: str, role: str, group_name: str, yes: bool) -> None:
    """Make DEVICE an admin of a group, or only a member.

    Admins invite, remove and change roles. DEVICE is named as for `covey
    remove`. The last admin cannot step down: make another admin first. A
    device that gives up its own admin rights is asked to confirm (--yes
    outside a terminal): only another admin can give them back.
    """
    from covey.core import roster
    from covey.core.node import io

    log, me = read_group(ctx, group_name)
    assert log.state is not None
    target = roster.resolve(log.state, device)
    roster.check_role(log, me, target, role)
    who = roster.label(log.state.members[target].record)
    group = log.state.name
    if target == me and role == "member":
        confirm(
            yes,
            f"Give up this device's admin rights in {group!r}? Only another admin can give"
            " them back.",
            f"giving up admin rights in {group!r}",
        )
    document = node_command(
        ctx,
        io.ChangeRole(log.group_id.hex(), target, role),  # type: ignore[arg-type]
        needs="named",
        group=log.group_id.hex(),
    )

    def human() -> None:
        article = "an admin" if role == "admin" else "a member"
        click.echo(f"{who} is now {article} of {group!r}.")
        for line in told_lines(document, "it"):
            click.echo(line)

    ctx.emit(document, human)


@click.command(name="leave")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
def leave(ctx: Context, name: str, yes: bool) -> None:
    """Leave a group: this device removes itself, and its keys for the group are deleted.

    The members left start a new epoch without it. The last member cannot
    leave (`covey group shred` deletes the group), nor the last admin (make
    another admin first). If no member is online to hear of it, the group's
    ops stay on this device, without keys, until `covey up` meets one of
    them; then the group is deleted here. Asks for confirmation in a
    terminal; pass --yes otherwise.
    """
    from covey.core import roster
    from covey.core.node import io

    log, me = read_group(ctx, name)
    roster.check_leave(log, me)
    assert log.state is not None
    group = log.state.name
    confirm(
        yes,
        f"Leave {group!r}? This device's keys for it are deleted: it will open nothing"
        " sealed for the group, old or new.",
        f"leaving {group!r}",
    )
    document = node_command(
        ctx, io.Leave(log.group_id.hex()), needs="named", group=log.group_id.hex()
    )

    def human() -> None:
        click.echo(f"Left {group!r}: its keys are gone from this device.")
        if document["delivered"]:
            click.echo(
                f"{listing(document['told'])} has heard of it"
                + (f" and tells {listing(document['to_tell'])}." if document["to_tell"] else ".")
            )
        else:
            click.echo(
                "No member has heard of it yet: the group stays here, without keys, until"
                f" `covey up` meets one of them ({listing(document['to_tell'])})."
            )

    ctx.emit(document, human)


@click.command()
@click.option("--group", "-g", "group_name", help="Only this group (default: every group).")
@common_options
def devices(ctx: Context, group_name: str | None) -> None:
    """Each group's devices, by person: name, role, safety words, last seen, key held.

    A person is the admins' word of whose devices are whose (`covey person
    set`); a device nobody placed is shown as a person of its own.

    "Holds the current key" means the group's current key was wrapped for
    it. "Last seen" is when this device last finished a sync with it (as
    `covey up` recorded it), or never. Reads the store: no passphrase.
    """
    from covey.core import roster
    from covey.store.sqlite import Store

    async def go() -> list[dict[str, Any]]:
        async with Store.open(ctx.home) as store:
            me = (await store.device_record()).device_id.raw
            if group_name is None:
                ids = [group_id for group_id, _ in await store.list_groups()]
            else:
                ids = [(await store.find_group(group_name))[0]]
            seen = {device: last for device, _, _, last, _ in await store.peers()}
            logs = [await store.load_log(group_id) for group_id in ids]
        documents = []
        for log in logs:
            document = roster.describe_devices(log, me, seen)
            for entry in document["devices"]:  # (as before: met, and when)
                entry["seen"] = entry["this_device"] or entry["last_seen"] is not None
                entry["last_sync"] = entry["last_seen"]
            documents.append(document)
        return documents

    documents = run(go)

    def human() -> None:
        if not documents:
            click.echo("No groups yet: `covey group create NAME` makes one.")
        for document in documents:
            show_devices(document)

    ctx.emit(documents[0] if group_name is not None else {"groups": documents}, human)


def show_devices(document: dict[str, Any]) -> None:
    """One group's devices, for people."""
    header = f"{document['group']} (epoch {document['epoch']})"
    if document["standing"] == "removed":
        by = document["removed_by"]
        header += (
            f": this device was removed by {by['name']!r} at {when(document['removed_at'])}"
            if by
            else ": this device is no longer a member"
        )
    elif document["standing"] == "leaving":
        header += ": this device left; waiting for a member to hear of it"
    click.echo(header)
    people: dict[str, list[dict[str, Any]]] = {}
    for device in document["devices"]:  # (most senior first: so are people)
        people.setdefault(device["person_id"], []).append(device)
    for devices in people.values():
        click.echo(f"  {devices[0]['person']}")
        for device in devices:
            state = "current key" if device["holds_current_key"] else "NO current key"
            if device["this_device"]:
                state += ", this device"
            else:
                state += f", last seen {when(device['last_seen'])}"
            click.echo(
                f"    {device['role']:<7} {device['name']:<20} {device['short_id']}  {state}"
            )
            click.echo(f"            {' '.join(device['safety_words'])}")
    if document["needs_healing"]:
        click.echo(
            "  Note: the current key is not held by exactly these members;"
            " the next `covey seal` (or `covey up`) rotates it."
        )


COMMANDS = (remove, devices)
GROUP_COMMANDS = (role, leave)
