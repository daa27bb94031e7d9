"""`covey seal` and `covey open`: data only a group's members can read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import (
    Context,
    ask_passphrase,
    common_options,
    node_command,
    run,
    unlock,
    when,
)

if TYPE_CHECKING:
    from covey.core.group import Group
    from covey.core.seal import Opened
    from covey.errors import InvalidInput

SUFFIX = ".covey"


@click.command()
@click.option("--group", "-g", "group_name", required=True, help="The group to seal for.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (default: FILE.covey).",
)
@click.option(
    "--ad",
    "associated",
    default="",
    help="Associated data: authenticated, not encrypted (a label).",
)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@common_options
def seal(
    ctx: Context, group_name: str, file: Path, output: Path | None, associated: str, force: bool
) -> None:
    """Seal FILE so that only members of the group can open it.

    If a merge left the group's current key with a removed device (or
    without a member), covey first rotates to a fresh key.
    """
    from covey.cli.groups import load
    from covey.core.node import io
    from covey.entropy import system_rng
    from covey.sealfiles import seal_file
    from covey.store.sqlite import Store

    destination = output or file.with_name(file.name + SUFFIX)
    # The heal (a rotation, if one is needed) is a change: the node makes it.
    healed = bool(
        node_command(ctx, io.Heal(group_name), needs="named", group=group_name)["rotated"]
    )
    passphrase = ask_passphrase(ctx)

    async def go() -> Group:
        async with Store.open(ctx.home) as store:
            group, _ = await load(store, group_name, passphrase)
            seal_file(group, file, destination, associated.encode(), system_rng, force)
            return group

    group = run(go)
    if healed:
        ctx.note(
            "Rotated to a fresh key first: the previous one was not held by exactly the members."
        )
    ctx.emit(
        {"ok": True, "output": str(destination), "group_id": group.id.hex(), "rotated": healed},
        lambda: click.echo(f"Sealed {file} for {group.state.name!r} into {destination}."),
    )


@click.command(name="open")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (default: FILE without .covey; '-': standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@common_options
def open_(ctx: Context, file: Path, output: Path | None, force: bool) -> None:
    """Open FILE sealed for a group this device is a member of.

    Nothing is written until the whole file checked (with `-o -`, not a
    byte reaches standard output before that either).
    """
    from covey.core import roster
    from covey.core.seal import HEAD_BYTES, sealed_group_id
    from covey.errors import (
        InvalidArgument,
        InvalidInput,
        KeyUnavailable,
        NoSuchGroup,
        NotSealedData,
    )
    from covey.sealfiles import open_file
    from covey.store.sqlite import Store

    if output is None:
        output = (
            file.with_suffix("") if file.suffix == SUFFIX else file.with_name(file.name + ".opened")
        )
    to_stdout = output == Path("-")
    if to_stdout and ctx.json:
        raise InvalidArgument("-o - writes the file to standard output: leave out --json")
    passphrase = ask_passphrase(ctx)

    async def go() -> tuple[Opened, Group]:
        async with Store.open(ctx.home) as store:
            try:
                with file.open("rb") as reader:
                    head = reader.read(HEAD_BYTES)
            except OSError as exc:
                raise InvalidArgument(f"cannot read {file}: {exc.strerror}") from exc
            try:
                wanted = sealed_group_id(head)
            except InvalidInput as exc:
                raise cannot_open(file, exc) from exc
            if wanted not in {group_id for group_id, _ in await store.list_groups()}:
                raise NoSuchGroup(
                    f"cannot open {file}: it was sealed for a group this device does not hold"
                    f" (group ID {wanted.hex()[:16]})"
                )
            group_id, _ = await store.find_group(wanted)
            me, data_key = await unlock(store, passphrase)
            group = await store.load_group(group_id, me, data_key)
            if roster.standing(group.log, me.device_id.raw) == "leaving":
                # Its keys were erased when it left; the log (kept until a
                # member has the leave) still holds wraps for it: not opened.
                raise KeyUnavailable(f"this device left {group.state.name!r}: its keys are deleted")

            def find(wanted: bytes) -> Group:
                if wanted != group.id:
                    raise NotSealedData()
                return group

            try:
                return open_file(find, file, output, force), group
            except InvalidInput as exc:
                raise cannot_open(file, exc) from exc

    opened, group = run(go)
    author = author_document(group, opened)
    if author["standing"] != "member":
        ctx.note(f"Note: {author_note(author, group.state.name)}")
    if to_stdout:  # (the data went to stdout: what was opened is told on stderr)
        ctx.note(f"Opened {file} (sealed by {opened.author_name!r} for {group.state.name!r}).")
        return
    ctx.emit(
        {
            "ok": True,
            "output": str(output),
            "group_id": opened.group.hex(),
            "group": group.state.name,
            "author": author,
            "associated_data": opened.associated.decode("utf-8", "replace"),
        },
        lambda: click.echo(
            f"Opened {file} into {output}"
            f" (sealed by {opened.author_name!r} for {group.state.name!r})."
        ),
    )


def author_document(group: Group, opened: Opened) -> dict[str, Any]:
    """Who sealed it, and where that device stands in the group now (from this replica)."""
    from covey.core import roster
    from covey.core.identity import DeviceId

    gone = roster.removal(group.log, opened.author)
    standing = "member" if gone is None else ("left" if gone.left else "removed")
    return {
        "device_id": str(DeviceId(opened.author)),
        "name": opened.author_name,
        "member": opened.author_is_member,
        "standing": standing,
        "removed_by": None
        if gone is None or gone.by is None
        else {"name": gone.by_name, "device_id": str(DeviceId(gone.by))},
        "removed_at": None if gone is None else gone.time,
        "equivocated": opened.author in group.state.equivocators,
    }


def author_note(author: dict[str, Any], group: str) -> str:
    """The line `covey open` shows when the author is no longer a member."""
    name = author["name"]
    caveat = (
        "it held the key it sealed under, and covey cannot tell whether it sealed this"
        " before or after"
    )
    if author["equivocated"]:
        return (
            f"sealed by {name!r}, which is no longer treated as a member of {group!r} (it"
            f" signed two different changes with one sequence number); {caveat}"
        )
    at = f" at {when(author['removed_at'])} (by the remover's clock)"
    if author["standing"] == "left":
        return f"sealed by {name!r}, which left {group!r}{at}; {caveat}"
    by = author["removed_by"]
    if by is None:
        return f"sealed by {name!r}, which is no longer a member of {group!r}; {caveat}"
    return f"sealed by {name!r}, removed from {group!r} by {by['name']!r}{at}; {caveat}"


def cannot_open(file: Path, exc: InvalidInput) -> InvalidInput:
    """`exc` again, its message saying which file could not be opened."""
    text = str(exc).rstrip(".")
    if text[:1].isupper() and text[1:2].islower():  # (a docstring's first line)
        text = text[0].lower() + text[1:]
    return type(exc)(f"cannot open {file}: {text}")


COMMANDS = (seal, open_)
