"""Fuzz harnesses, one per parser; see README.md."""
