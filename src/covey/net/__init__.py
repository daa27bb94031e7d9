"""The network edges: TCP channels, discovery (mDNS), relay clients."""
