"""The pure core of covey: bytes, events and time in; state and effects out.

Nothing in this package opens a socket or a file, reads a clock or draws OS
randomness: `now` (integer seconds) and `rng` (a callable returning n random
bytes) are arguments. The CLI, the daemon, the tests and the simulator all
drive this same code.
"""

from collections.abc import Callable

#: A source of randomness: `rng(n)` returns n uniformly random bytes. The edges
#: pass `covey.entropy.system_rng`; tests pass a seeded one.
Rng = Callable[[int], bytes]
