"""The node: one device's whole behaviour as a pure state machine.

`io` holds the events that go in and the effects that come out; `links` the
protocol of one connection; `node` the `Node` that ties them together. The
`covey up` daemon (`covey.runtime.daemon`), the simulator (`covey.sim`) and
the tests all drive this same code.
"""

from covey.core.node.node import Node, NodeConfig

__all__ = ["Node", "NodeConfig"]
