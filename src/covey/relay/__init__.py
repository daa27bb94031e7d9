"""Relays: untrusted store-and-forward mailboxes (PROTOCOL.md section 18).

The relay's protocol is pure, like the node's: `requests` reads and writes
what travels on a relay connection, `session` is one connection's state
machine (the handshake, the relay's proof, who may do what, the rate
limit), and `store` holds inboxes, mirror segments and blobs behind one
port (`RelayStore.execute`), with an in-memory implementation for tests and
the simulator. The relay process and its database stores drive these.
"""
