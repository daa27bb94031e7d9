"""Pause Python's cyclic garbage collector during a bulk load.

Replaying a log allocates many small objects that live as long as the log;
the cyclic collector would rescan them again and again as they accumulate
(about a fifth of the replay time, measured in benchmarks/apply_ops.py). A
replay creates no reference cycles, so nothing is lost by pausing the
collector for its duration; it runs again, once, afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (unless it already was)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
