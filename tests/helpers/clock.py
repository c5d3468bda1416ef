"""A fake pair of clocks for core tests: monotonic seconds and Unix milliseconds, moved together."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FakeClock"]


@dataclass
class FakeClock:
    """The adapter's two clocks, frozen until a test moves them.

    ``now`` is the monotonic clock the core compares deadlines against; ``wall_ms`` is Unix time
    in milliseconds for anything stamped on the wire (signatures). The default ``wall_ms`` is
    2026-01-01T00:00:00Z.
    """

    now: float = 1000.0
    wall_ms: int = 1_767_225_600_000

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (the wall clock to the nearest millisecond)."""
        if seconds < 0:
            raise ValueError(f"a FakeClock only moves forward, not by {seconds}")
        self.now += seconds
        self.wall_ms += round(seconds * 1000)

    def read(self) -> tuple[float, int]:
        """Both clocks at one moment, as an adapter's ``_clocks()`` returns them."""
        return self.now, self.wall_ms
