"""The loop every harness in ``fuzz/`` shares: mutate seed inputs, run the harness's check, keep
what breaks it.

A harness module defines ``SEEDS`` (valid inputs to start from), ``TOKENS`` (pieces worth splicing
in: CRLFs, header names, digits) and ``check(data)``, which feeds ``data`` to a parser whole and
split and raises `AssertionError` (or anything else) when the invariant fails. ``run`` drives it:

* with `atheris <https://github.com/google/atheris>`_ installed and ``--atheris``, coverage-guided
  (``pip install atheris``; extra arguments go to libFuzzer);
* otherwise a seeded random mutator for ``--seconds`` seconds, which needs nothing installed.

An input that breaks the check is written to ``fuzz/crashes/<harness>-<sha1>.bin`` and the run
exits 1 (atheris writes its own ``crash-*`` file); ``--replay FILE`` runs one saved input again.
atheris keeps its growing corpus in ``fuzz/corpus/<harness>/``, seeded from ``SEEDS``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["mutate", "run", "split_points", "whole_and_split"]

CRASHES = Path(__file__).resolve().parent / "crashes"
CORPUS = Path(__file__).resolve().parent / "corpus"


def split_points(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut at a few random places (single bytes sometimes, to reach every boundary)."""
    if len(data) < 2:
        return [data] if data else []
    if rng.random() < 0.1:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


T = TypeVar("T")


def whole_and_split(feed: Callable[[list[bytes], bool], T], data: bytes) -> Iterator[tuple[T, T]]:
    """``feed(chunks, eof)`` on ``data`` whole and cut at places derived from ``data`` itself,
    without and then with EOF after: one (whole, split) pair of outcomes each time."""
    rng = random.Random(data)
    for eof in (False, True):
        yield feed([data] if data else [], eof), feed(split_points(data, rng), eof)


def mutate(data: bytes, tokens: Sequence[bytes], rng: random.Random) -> bytes:
    """One to four random edits: flip, insert, delete, duplicate, or splice a token."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(0, len(out))
        action = rng.randrange(6)
        if action == 0 and out:
            out[min(where, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            out[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action == 2 and out:
            del out[where : where + rng.randint(1, 16)]
        elif action == 3 and out:
            start = rng.randrange(len(out))
            out[where:where] = out[start : start + rng.randint(1, 32)]
        else:
            out[where:where] = rng.choice(tokens)
    return bytes(out)


def _save(name: str, data: bytes) -> Path:
    CRASHES.mkdir(exist_ok=True)
    path = CRASHES / f"{name}-{hashlib.sha1(data).hexdigest()}.bin"
    path.write_bytes(data)
    return path


def run(
    name: str,
    check: Callable[[bytes], None],
    seeds: Sequence[bytes],
    tokens: Sequence[bytes],
    argv: list[str] | None = None,
) -> int:
    """The command line of a harness; returns the exit status."""
    parser = argparse.ArgumentParser(description=f"fuzz the {name} parser")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long the random mutator runs"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="the mutator's seed (random otherwise)"
    )
    parser.add_argument("--replay", type=Path, help="run one saved input and exit")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided, with atheris")
    args, rest = parser.parse_known_args(argv)

    if args.replay is not None:
        check(args.replay.read_bytes())
        print(f"{args.replay}: passes")
        return 0

    if args.atheris:
        import atheris  # type: ignore[import-not-found, import-untyped, unused-ignore]

        corpus_dir = CORPUS / name  # the seeds, where libFuzzer also keeps what it finds
        corpus_dir.mkdir(parents=True, exist_ok=True)
        for seed_input in seeds:
            (corpus_dir / hashlib.sha1(seed_input).hexdigest()).write_bytes(seed_input)
        atheris.instrument_all()  # coverage feedback from every loaded module, parsers included
        atheris.Setup([sys.argv[0], *rest, str(corpus_dir)], check)
        atheris.Fuzz()
        return 0

    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    corpus = list(seeds)
    runs = 0
    stop_at = time.monotonic() + args.seconds
    while time.monotonic() < stop_at:
        # Half the time from a seed itself: the wandering corpus fills with inputs broken early
        # on, and the paths deep inside a valid input would otherwise be rarely tried.
        data = mutate(rng.choice(seeds if rng.random() < 0.5 else corpus), tokens, rng)
        try:
            check(data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # a Rust panic from a library is a BaseException too
            traceback.print_exc()
            print(
                f"{name}: the invariant broke after {runs} runs (seed {seed}); input saved to {_save(name, data)}"
            )
            return 1
        runs += 1
        if len(corpus) < 5000 and rng.random() < 0.05:
            corpus.append(data)  # a crude way to wander further from the seeds
    print(f"{name}: {runs} inputs in {args.seconds:.0f} s (seed {seed}), the invariant held")
    return 0
