"""Every script in ``bench/`` still runs, on its smallest settings.

The figures are not checked (they belong to the scripts, on a quiet machine): a change to an
internal the benchmarks replace (the socket ``connect`` of `kalshi_sync._io`, say) must not
leave them broken until someone next measures. Each run takes a few seconds at most.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

#: Each script, its quickest arguments, and a line its report always prints.
RUNS = [
    ("rest_overhead.py", ["--quick"], "3. Targets:"),
    ("parse_breakdown.py", ["--quick"], "freeing a parsed page"),
    ("profile_rest.py", ["--iterations", "3", "--top", "3"], "cumtime"),
    ("ratelimit_wire.py", ["--seconds", "0.3", "--callers", "4"], "of the budget"),
    ("reference_sdk.py", ["--quick"], ""),
    ("sim_matching.py", ["--orders", "300", "--book-orders", "500"], "trades"),
    ("sim_roundtrips.py", ["--calls", "10", "--runs", "1"], "signed GET/s"),
]


def test_every_script_is_listed() -> None:
    scripts = {path.name for path in BENCH.glob("*.py") if not path.name.startswith("_")}
    assert scripts == {name for name, _, _ in RUNS}


@pytest.mark.parametrize(("script", "arguments", "expected"), RUNS, ids=[run[0] for run in RUNS])
def test_the_script_runs(script: str, arguments: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]
