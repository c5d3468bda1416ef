"""The local exchange served by ``python -m kalshi_anyio.sim`` in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["exchange_process"]


@contextmanager
def exchange_process(*flags: str, key_file: Path) -> Iterator[str]:
    """Run the command with ``flags``, the trader's key written to ``key_file``; yields the
    exchange's base URL, and stops the process after the block."""
    command = [sys.executable, "-m", "kalshi_anyio.sim", "--port", "0", "--key-file", str(key_file)]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        scheme = "https" if "--tls" in flags else "http"
        assert first.startswith(f"local Kalshi exchange at {scheme}://127.0.0.1:"), first
        key_line = process.stdout.readline()
        assert "key id:      local-trader-key" in key_line
        yield first.removeprefix("local Kalshi exchange at ").strip()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
