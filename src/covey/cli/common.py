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

from covey.errors import InvalidArgument

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


async def unlock(store: Any) -> tuple[Any, bytes]:
    """This device's identity and the store's data key, asking for a passphrase if set."""
    ring = await store.keyring()
    passphrase = passphrase_to_unlock() if ring.kind == "passphrase" else None
    return await store.open_identity(passphrase)


def run(async_fn: Callable[[], Any]) -> Any:
    """Run an async command body on anyio's default backend."""
    import anyio

    return anyio.run(async_fn)
