"""What the stress runs (`interrupt_stress`, `cancel_stress`) share."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["dropped_sockets"]


@contextmanager
def dropped_sockets() -> Iterator[list[str]]:
    """Collect, instead of printing, the ResourceWarnings raised in the block: the sockets the
    garbage collector closed. Every one is caught, not only the first from each place."""
    dropped: list[str] = []

    def count(message: warnings.WarningMessage) -> None:
        if issubclass(message.category, ResourceWarning):
            dropped.append(str(message.message)[:60])

    show = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
    warnings._showwarnmsg_impl = count  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ResourceWarning)
            yield dropped
    finally:
        warnings._showwarnmsg_impl = show  # type: ignore[attr-defined]
