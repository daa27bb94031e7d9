"""A deterministic simulator: many real nodes on one virtual clock, driven by a seed.

`covey.sim.run(scenario, seed)` runs the unmodified `covey.core.node.Node` of
every simulated device on a simulated network with seeded delays, faults,
crashes and partitions, while simulated people use their devices; it checks
the invariants after every step and stops at the first violation. See
`world` (the engine), `network`, `store`, `users`, `scenarios`,
`invariants` and `mutants`; `python -m covey.sim --help` for the command.
"""

from covey.sim.runner import run

__all__ = ["run"]
