"""The node: one device's whole behaviour as a pure state machine.

`io` holds the events that go in and the effects that come out; `links` the
protocol of one connection; `node` the `Node` that ties them together. The
`covey up` daemon (`covey.runtime.daemon`), the simulator (`covey.sim`) and
the tests all drive this same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covey.core.node.node import Node, NodeConfig

__all__ = ["Node", "NodeConfig"]


def __getattr__(name: str) -> Any:
    # Imported on first use: a command that only needs `io` or `views` (the
    # store's, `covey group show`'s) does not load the node and pairing.
    if name in __all__:
        from covey.core.node import node

        return getattr(node, name)
    raise AttributeError(name)
