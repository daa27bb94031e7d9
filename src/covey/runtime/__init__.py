"""The async runtime: drives the pure core over real channels and the store."""
