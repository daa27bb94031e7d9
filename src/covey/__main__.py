"""`python -m covey`: the same as the `covey` command."""

from covey.cli import entry

entry()
