"""The `covey` command line.

`main` runs the click application and turns every expected failure into one
line on stderr and a non-zero exit (and, under --json, one JSON document on
stdout): a user never sees a traceback for a mistake. Command modules import
their heavy dependencies inside the command functions so `covey --help`
starts fast (benchmarks/cli_startup.py).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Final

import click

from covey.errors import CoveyError

#: Exit statuses: 1 for a covey error, 2 for a command line that does not parse.
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def fail(message: str, code: str, status: int, as_json: bool) -> int:
    """Report one failure: a line on stderr, and a JSON document under --json."""
    line = " ".join(message.split())  # one line, whatever the message held
    click.echo(f"covey: error: {line}", err=True)
    if as_json:
        click.echo(json.dumps({"ok": False, "error": {"code": code, "message": line}}))
    return status


def main(argv: list[str] | None = None) -> int:
    """Run covey with `argv` (default: the process's arguments); return the exit status."""
    from covey.cli.app import cli

    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        cli.main(args=args, prog_name="covey", standalone_mode=False)
    except CoveyError as exc:
        return fail(str(exc), exc.code, EXIT_ERROR, as_json)
    except click.UsageError as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp") and exc.ctx is not None:
            click.echo(exc.ctx.get_help())  # bare `covey`: show the help
            return EXIT_USAGE
        return fail(exc.format_message(), "usage_error", EXIT_USAGE, as_json)
    except click.ClickException as exc:
        return fail(exc.format_message(), "error", EXIT_ERROR, as_json)
    except (click.Abort, KeyboardInterrupt):
        return fail("interrupted", "interrupted", EXIT_INTERRUPTED, as_json)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("COVEY_DEBUG"):
            raise
        return fail(
            f"internal error ({type(exc).__name__}); run with COVEY_DEBUG=1 for details",
            "internal_error",
            EXIT_ERROR,
            as_json,
        )
    return 0


def entry() -> None:
    """The console script."""
    sys.exit(main())
