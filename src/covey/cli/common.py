"""What every command shares: --home and --json, output, passphrases, time.

Every command takes `--json`; it then prints exactly one JSON document on
stdout and nothing else there (notes and warnings go to stderr).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from covey.errors import InvalidArgument, NodeBusy

ENV_PASSPHRASE: Final = "COVEY_PASSPHRASE"  # noqa: S105 (a variable name)
ENV_NEW_PASSPHRASE: Final = "COVEY_NEW_PASSPHRASE"  # noqa: S105 (a variable name)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Context:
    """The options every command takes."""

    home: Path
    json: bool

    def emit(self, document: dict[str, Any], human: Callable[[], None]) -> None:
        """Print `document` under --json, else call `human` to print for people."""
        if self.json:
            click.echo(json.dumps(document, indent=2))
        else:
            human()

    def note(self, message: str) -> None:
        """A line for people, on stderr (never mixed into --json output)."""
        click.echo(message, err=True)


def common_options(func: F) -> F:
    """Add --home and --json, and pass a `Context` as the first argument."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The device's store directory (default: $COVEY_HOME, else the user data dir).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
    @functools.wraps(func)
    def wrapper(*args: Any, home: Path | None, as_json: bool, **kwargs: Any) -> Any:
        from covey.store.home import resolve_home

        return func(Context(resolve_home(home), as_json), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def now() -> int:
    """The wall clock in Unix seconds: the edges' `now` for the core."""
    return int(time.time())


def interactive() -> bool:
    return sys.stdin.isatty()


def confirm(yes: bool, question: str, what: str) -> None:
    """Ask `question` in a terminal unless `--yes` was given; elsewhere `--yes` is required.

    `what` names the change for the error outside a terminal ("shredding
    needs confirmation: add --yes"). A "no" changes nothing and fails.
    """
    if yes:
        return
    if not interactive():
        raise InvalidArgument(f"{what} needs confirmation: add --yes")
    if not click.confirm(question, err=True):
        raise InvalidArgument("not confirmed: nothing was changed")


def when(seconds: int | None, never: str = "never") -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM` for people (`never` for None)."""
    if seconds is None:
        return never
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def passphrase_to_unlock() -> str | None:
    """The passphrase from $COVEY_PASSPHRASE, else a prompt in a terminal, else None."""
    if ENV_PASSPHRASE in os.environ:
        return os.environ[ENV_PASSPHRASE]
    if interactive():
        value: str = click.prompt("Passphrase", hide_input=True, err=True)
        return value
    return None


def passphrase_to_set(env: str, *, required: bool = False) -> str | None:
    """A new passphrase from `env`, else asked twice in a terminal; empty means none.

    With `required`, a missing variable outside a terminal is an error rather
    than "no passphrase": changing a passphrase must never remove it by default.
    """
    if env in os.environ:
        return os.environ[env] or None
    if required and not interactive():
        raise InvalidArgument(
            f"set {env} to the new passphrase (empty to remove it), or run in a terminal"
        )
    if interactive():
        value: str = click.prompt(
            "New passphrase (empty for none)",
            default="",
            show_default=False,
            hide_input=True,
            confirmation_prompt=True,
            err=True,
        )
        return value or None
    return None


_PASSPHRASES: dict[Path, str | None] = {}


def ask_passphrase(ctx: Context) -> str | None:
    """The store's passphrase, asked once per command and before any event loop runs.

    (At a prompt inside `anyio.run`, Ctrl-C was held back until a second
    one; out here it stops the command at once.) None if the store has none.
    """
    if ctx.home in _PASSPHRASES:
        return _PASSPHRASES[ctx.home]
    if ENV_PASSPHRASE in os.environ or not interactive():
        value = passphrase_to_unlock()
    else:
        from covey.store.sqlite import Store

        async def kind() -> str:
            async with Store.open(ctx.home) as store:
                return (await store.keyring()).kind

        value = passphrase_to_unlock() if run(kind) == "passphrase" else None
    _PASSPHRASES[ctx.home] = value
    return value


async def unlock(store: Any, passphrase: str | None) -> tuple[Any, bytes]:
    """This device's identity and the store's data key (`passphrase` from `ask_passphrase`)."""
    return await store.open_identity(passphrase)


def node_command(
    ctx: Context,
    action: Any,
    *,
    needs: str,
    group: str | None = None,
    network: bool = False,
    listen: bool = False,
    port: int = 0,
    on_reply: Callable[[dict[str, Any]], None] = lambda reply: None,
) -> dict[str, Any]:
    """Run a state-changing command on this device's node; its final reply's data.

    Through the running `covey up` when there is one (no passphrase needed),
    else on a node of the command's own, holding the home lock meanwhile
    (`covey.runtime.control`). `on_reply` sees every reply as a dict with
    `data`, `final` and `error`; a failed final reply raises its error.
    """
    from covey.runtime import control, local

    lock = control.HomeLock(ctx.home)
    deadline = time.monotonic() + control.LOCK_WAIT
    while True:
        if lock.try_acquire(command_name()):
            break
        try:
            return _through_node(ctx, action, on_reply)
        except NodeBusy as exc:
            if time.monotonic() > deadline:
                if isinstance(exc.__cause__, OSError):  # nobody answered on the socket
                    raise lock.busy() from exc  # (names the holder, and what to do)
                raise
            time.sleep(0.2)  # the holder was a short command, or a node starting: again
    try:
        control.remove_socket(ctx.home)  # any socket file now is a dead node's
        passphrase = ask_passphrase(ctx)

        def seen(reply: Any, bound: int) -> None:
            on_reply(control.with_port(control.reply_document(reply), bound))

        async def go() -> Any:
            return await local.run_command(
                ctx.home,
                passphrase,
                action,
                needs=needs,  # type: ignore[arg-type]
                group=group,
                network=network,
                listen=listen,
                port=port,
                on_reply=seen,
            )

        final = control.reply_document(run(go))
    finally:
        lock.release()
    if final["error"] is not None:
        raise control.reply_error(final)
    data: dict[str, Any] = final["data"]
    return data


def command_name() -> str:
    """The command being run, as typed (`covey group rotate`), for the home lock's note."""
    context = click.get_current_context(silent=True)
    return "covey" if context is None else context.command_path


def _through_node(
    ctx: Context, action: Any, on_reply: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    from covey.runtime import control

    async def go() -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for reply in control.call(ctx.home, action):
            on_reply(reply)
            last = reply
        return last

    final = run(go)
    if final.get("error") is not None:
        raise control.reply_error(final)
    data: dict[str, Any] = final.get("data") or {}
    return data


def run(async_fn: Callable[[], Any]) -> Any:
    """Run an async command body on anyio's default backend."""
    import anyio

    return anyio.run(async_fn)
