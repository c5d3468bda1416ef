"""What the stress runs (`interrupt_stress`, `cancel_stress`) share."""

from __future__ import annotations

import collections
import random
import ssl
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.helpers.exchange_process import exchange_process

__all__ = [
    "Outcome",
    "commonest",
    "dropped_sockets",
    "exchange_apart",
    "pick_seed",
    "report",
    "run_setups",
    "tally",
]

#: What one setup's run found: whether it held, and the line that says so.
Outcome = tuple[bool, str]


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


@contextmanager
def exchange_apart(tls: bool, *, httpx: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """The local exchange in a process of its own, as a real one would be: it competes with no
    client thread for this interpreter's lock, and nothing the client process does to its own
    descriptors can reach the exchange's sockets. Yields its port and the keyword arguments of
    a client of it: a `kalshi_httpx` one (``httpx``), or a `kalshi_sync` one."""
    with tempfile.TemporaryDirectory() as folder:
        key_file, ca_file = Path(folder, "key.pem"), Path(folder, "ca.pem")
        flags = ["--key-type", "ed25519"] + (["--tls", "--ca-file", str(ca_file)] if tls else [])
        with exchange_process(*flags, key_file=key_file) as base_url:
            options: dict[str, Any] = {
                "base_url": base_url,
                "key_id": "local-trader-key",
                "private_key_path": key_file,
            }
            if tls:
                trust = ssl.create_default_context(cafile=ca_file)
                options["verify" if httpx else "ssl_context"] = trust
            port = urlsplit(base_url).port
            assert port is not None
            yield port, options


def report(still_open: int, done: str, dropped: Sized, *, strict: bool = False) -> Outcome:
    """The outcome of a run that found no violation on the way: it fails if sockets are still
    connected to the exchange after the client's close, or (``strict``) if the garbage
    collector closed any (``dropped``). ``done`` says what the run did."""
    if still_open:
        return False, f"{still_open} socket(s) still connected after close"
    line = f"{done}; {len(dropped)} socket(s) closed by the garbage collector"
    return not (strict and len(dropped)), line


def tally(
    failures: collections.Counter[str],
    still_open: int,
    done: str,
    dropped: Sized,
    *,
    strict: bool = False,
) -> Outcome:
    """The outcome of a run that counted its failed calls by kind: it fails if any call failed,
    naming the three commonest kinds, and otherwise as `report` says."""
    if failures:
        return False, f"{done}: {commonest(failures)}"
    return report(still_open, done, dropped, strict=strict)


def commonest(kinds: collections.Counter[str]) -> str:
    """The three commonest kinds of failure, each with its count: "3 x ReadError: ...; ..."."""
    return "; ".join(f"{count} x {what}" for what, count in kinds.most_common(3))


def pick_seed(given: int | None) -> int:
    """The seed given, or a random one; printed, so that a failed run can be made again."""
    seed = given if given is not None else random.randrange(2**32)
    print(f"seed {seed}", flush=True)
    return seed


def run_setups(seed: int, setups: Iterable[tuple[str, Callable[[], Outcome]]]) -> int:
    """Run each setup, print its outcome, and return the exit status: 1 if any failed."""
    failed = False
    for label, run in setups:
        ok, line = run()
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {line}", flush=True)
        failed = failed or not ok
    if failed:
        print(f"violation; run again with --seed {seed}")
    return 1 if failed else 0
