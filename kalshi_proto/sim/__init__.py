"""The local exchange: a deterministic Kalshi, pure like the rest of the core."""
