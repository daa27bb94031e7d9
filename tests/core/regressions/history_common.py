"""Shared setup for the history-link reviewer's reproducers (its `_common.py`,
pointed at this checkout)."""
import os
import sys

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
sys.path.insert(0, os.path.abspath(REPO))
sys.path.insert(0, os.path.join(os.path.abspath(REPO), "src"))

from covey.core import keys  # noqa: E402
from covey.core.ops import Link  # noqa: E402
from tests.conftest import NOW, SeededRng  # noqa: E402
from tests.harness import World  # noqa: E402

__all__ = ["World", "SeededRng", "NOW", "keys", "Link", "heal_all", "members"]


def members(world):
    state = world.replicas[0].state
    return [i for i in range(world.n) if world.id(i) in state.members]


def heal_all(world, rounds=None):
    """What every member's node does: heal the current epoch, close history gaps."""
    for _ in range(rounds or 4 * world.n):
        for i in members(world):
            g = world.replicas[i]
            if g.state.needs_healing:
                world.act(i, "heal")
            elif g.needs_history_heal:
                world.act(i, "rotate")
            else:
                continue
            world.converge()
            break
        else:
            return True
    return False
