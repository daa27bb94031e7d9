"""Deterministic recovery dealings for the simulator and the tests.

`covey.recoverydeal.deal` draws from the OS (the secret, the nonce) and
shamir-mnemonic draws its identifier and random shares from its module's
`RANDOM_BYTES`. A simulation or a test must replay exactly from its seed,
so here both are taken from a given `rng` for the length of one dealing:
the library's global is swapped and put back (the simulator is one thread;
the runtime never calls this, and never swaps the global).
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import shamir_mnemonic.shamir

from covey import recoverydeal
from covey.core import Rng, shares


def seeded_dealer(rng: Rng) -> Callable[[int, int], shares.Dealt]:
    """A dealer (as `NodeConfig.dealer` takes) whose every random byte comes from `rng`."""

    def deal(threshold: int, count: int) -> shares.Dealt:
        with (
            mock.patch.object(shamir_mnemonic.shamir, "RANDOM_BYTES", rng),
            mock.patch.object(recoverydeal, "system_rng", rng),
        ):
            return recoverydeal.deal(threshold, count)

    return deal
