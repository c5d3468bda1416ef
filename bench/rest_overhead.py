"""Per-call overhead of every REST client flavour, with the network transport excluded.

Run ``python bench/rest_overhead.py`` (about a minute) or ``--quick`` (a few seconds). It prints:

1. The signing floor: one RSA-PSS (2048-bit, SHA-256, salt = digest length) and one Ed25519
   signature of a typical pre-sign string, made with cryptography directly.
2. For each client, the time of one call from the facade method to the parsed model:
   (a) ``client.portfolio.balance()`` (signed GET, small body), once with an RSA key and once
   with an Ed25519 key; (b) ``client.markets.list(limit=1000)`` answered with 1,000 markets.
   The socket is replaced by an in-memory stream (`kalshi_sync`, `kalshi_anyio`) or an
   `httpx.MockTransport` (`kalshi_httpx`); see ``bench/_fixtures.py``. Request serialisation
   and response parsing (h11 or httpx, then pydantic) are measured.
3. The targets: (a) median within 40 µs of the key's signing median; (b) median at most
   40 ms / 3.
4. For scale, with no target: (b) as a raw call (``calls.get_markets(limit=1000).raw()``, no
   model built) with `kalshi_sync`, and the same followed by ``json.loads`` of the body.

Each call is timed on its own with `time.perf_counter_ns` after a warm-up; the table shows the
median, the 90th percentile and the minimum. The garbage collector stays on (a real caller pays
for it) and is run once before each row. Async clients run inside one `anyio.run` per backend, so the
event loop's own cost per call is included.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fixtures as fx
import anyio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import kalshi_anyio
import kalshi_anyio._io
import kalshi_httpx
import kalshi_sync
import kalshi_sync._io
from kalshi_proto.rest.generated import calls

PRE_SIGN = b"1703123456789GET/trade-api/v2/portfolio/balance"
MARKETS_TARGET_US = 40_000 / 3
ABOVE_FLOOR_TARGET_US = 40.0
KEYS = ("RSA", "Ed25519")


@dataclass(frozen=True)
class Plan:
    """How many iterations each kind of measurement gets, and a time cap per row."""

    sign: dict[str, int]
    balance: dict[str, int]
    markets: int
    warmup_small: int
    warmup_markets: int
    row_seconds: float


FULL = Plan(
    sign={"RSA": 2000, "Ed25519": 20000},
    balance={"RSA": 1500, "Ed25519": 5000},
    markets=80,
    warmup_small=200,
    warmup_markets=5,
    row_seconds=3.0,
)
QUICK = Plan(
    sign={"RSA": 200, "Ed25519": 2000},
    balance={"RSA": 150, "Ed25519": 500},
    markets=10,
    warmup_small=30,
    warmup_markets=2,
    row_seconds=0.4,
)


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass(frozen=True)
class Stats:
    n: int
    median_us: float
    p90_us: float
    min_us: float
    #: With a paired floor: the median of (this call - the signature made just before it).
    paired_us: float | None = None

    @classmethod
    def of(cls, samples_ns: list[int], paired_ns: list[int] | None = None) -> Stats:
        ordered = sorted(samples_ns)
        n = len(ordered)
        p90 = ordered[min(n - 1, int(0.9 * n))]
        paired = _median(paired_ns) / 1000 if paired_ns else None
        return cls(n, _median(ordered) / 1000, p90 / 1000, ordered[0] / 1000, paired)


@dataclass(frozen=True)
class Row:
    client: str
    backend: str
    call: str
    key: str
    stats: Stats
    body_bytes: int
    floor_us: float | None  # the key's signing median, for (a) rows

    @property
    def above_floor_us(self) -> float | None:
        return None if self.floor_us is None else self.stats.median_us - self.floor_us

    @property
    def target_us(self) -> float:
        if self.floor_us is None:
            return MARKETS_TARGET_US
        return self.floor_us + ABOVE_FLOOR_TARGET_US

    @property
    def passed(self) -> bool:
        return self.stats.median_us <= self.target_us


# ---- timing loops -------------------------------------------------------------------------


def time_sync(
    fn: Callable[[], Any],
    warmup: int,
    iterations: int,
    seconds: float,
    floor: Callable[[], Any] | None = None,
) -> Stats:
    """Time ``fn``; with ``floor``, also time one ``floor()`` just before each call and keep
    the differences (`Stats.paired_us`), which a machine's slow and fast phases disturb less."""
    for _ in range(warmup):
        fn()
    gc.collect()
    samples: list[int] = []
    paired: list[int] = []
    clock = time.perf_counter_ns
    stop_at = clock() + int(seconds * 1e9)
    minimum = max(5, iterations // 10)
    for i in range(iterations):
        if floor is not None:
            before = clock()
            floor()
            floor_ns = clock() - before
        start = clock()
        fn()
        end = clock()
        samples.append(end - start)
        if floor is not None:
            paired.append(end - start - floor_ns)
        if end > stop_at and i + 1 >= minimum:
            break
    return Stats.of(samples, paired)


async def time_async(
    fn: Callable[[], Awaitable[Any]],
    warmup: int,
    iterations: int,
    seconds: float,
    floor: Callable[[], Any] | None = None,
) -> Stats:
    """`time_sync` for a coroutine function (``floor`` stays a plain function)."""
    for _ in range(warmup):
        await fn()
    gc.collect()
    samples: list[int] = []
    paired: list[int] = []
    clock = time.perf_counter_ns
    stop_at = clock() + int(seconds * 1e9)
    minimum = max(5, iterations // 10)
    for i in range(iterations):
        if floor is not None:
            before = clock()
            floor()
            floor_ns = clock() - before
        start = clock()
        await fn()
        end = clock()
        samples.append(end - start)
        if floor is not None:
            paired.append(end - start - floor_ns)
        if end > stop_at and i + 1 >= minimum:
            break
    return Stats.of(samples, paired)


# ---- 1. the signing floor -------------------------------------------------------------------


def floor_jobs(keys: fx.Keys) -> dict[str, Callable[[], Any]]:
    """One bare signature per key type, made with cryptography directly."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    sha256 = hashes.SHA256()
    rsa_key, ed_key = keys.rsa, keys.ed25519
    return {
        "RSA": lambda: rsa_key.sign(PRE_SIGN, pss, sha256),
        "Ed25519": lambda: ed_key.sign(PRE_SIGN),
    }


def signing_floor(keys: fx.Keys, plan: Plan) -> dict[str, Stats]:
    return {
        name: time_sync(job, plan.warmup_small, plan.sign[name], plan.row_seconds * 2)
        for name, job in floor_jobs(keys).items()
    }


# ---- 2. the clients -------------------------------------------------------------------------


def _check_balance(value: Any) -> None:
    assert value.balance == 1_234_567, value


def _check_markets(page: Any, count: int) -> None:
    assert len(page) == count, len(page)
    assert page.items[0].ticker != page.items[-1].ticker
    assert page.cursor


def _check_wire(request: bytes | str, path: str, signed: bool) -> None:
    text = request.decode("latin-1") if isinstance(request, bytes) else request
    assert path in text, text[:200]
    assert ("KALSHI-ACCESS-SIGNATURE" in text.upper()) == signed, text[:400]


def bench_sync(
    keys: fx.Keys, responses: fx.Responses, floors: dict[str, Stats], plan: Plan
) -> list[Row]:
    rows: list[Row] = []
    name = "kalshi_sync.KalshiClient"
    for key in KEYS:
        stream = fx.FakeStream(responses.balance_raw)
        with fx.fake_connect(kalshi_sync._io, stream) as connects:
            client = kalshi_sync.KalshiClient(**fx.client_kwargs(keys.by_name(key)))
            _check_balance(client.portfolio.balance())
            _check_wire(stream.last_request, "GET /trade-api/v2/portfolio/balance ", True)
            stats = time_sync(
                client.portfolio.balance,
                plan.warmup_small,
                plan.balance[key],
                plan.row_seconds,
                floor=floor_jobs(keys)[key],
            )
            client.close()
        assert connects[0] == 1, "the connection was not reused"
        rows.append(
            Row(
                name,
                "-",
                "(a) portfolio.balance()",
                key,
                stats,
                len(responses.balance),
                floors[key].median_us,
            )
        )
    stream = fx.FakeStream(responses.markets_raw)
    with fx.fake_connect(kalshi_sync._io, stream) as connects:
        client = kalshi_sync.KalshiClient(**fx.client_kwargs(keys.rsa))
        _check_markets(client.markets.list(limit=1000), responses.market_count)
        _check_wire(stream.last_request, "GET /trade-api/v2/markets?limit=1000 ", False)
        stats = time_sync(
            lambda: client.markets.list(limit=1000),
            plan.warmup_markets,
            plan.markets,
            plan.row_seconds * 2,
        )
        client.close()
    assert connects[0] == 1, "the connection was not reused"
    rows.append(
        Row(name, "-", "(b) markets.list(limit=1000)", "-", stats, len(responses.markets), None)
    )
    return rows


def bench_httpx_sync(
    keys: fx.Keys, responses: fx.Responses, floors: dict[str, Stats], plan: Plan
) -> list[Row]:
    rows: list[Row] = []
    name = "kalshi_httpx.KalshiClient"
    for key in KEYS:
        transport, handler = fx.mock_transport(responses.balance)
        client = kalshi_httpx.KalshiClient(
            transport=transport, **fx.client_kwargs(keys.by_name(key))
        )
        _check_balance(client.portfolio.balance())
        assert handler.last_request is not None
        assert handler.last_request.url.path == "/trade-api/v2/portfolio/balance"
        assert "kalshi-access-signature" in handler.last_request.headers
        stats = time_sync(
            client.portfolio.balance,
            plan.warmup_small,
            plan.balance[key],
            plan.row_seconds,
            floor=floor_jobs(keys)[key],
        )
        client.close()
        rows.append(
            Row(
                name,
                "-",
                "(a) portfolio.balance()",
                key,
                stats,
                len(responses.balance),
                floors[key].median_us,
            )
        )
    transport, handler = fx.mock_transport(responses.markets)
    client = kalshi_httpx.KalshiClient(transport=transport, **fx.client_kwargs(keys.rsa))
    _check_markets(client.markets.list(limit=1000), responses.market_count)
    stats = time_sync(
        lambda: client.markets.list(limit=1000),
        plan.warmup_markets,
        plan.markets,
        plan.row_seconds * 2,
    )
    client.close()
    rows.append(
        Row(name, "-", "(b) markets.list(limit=1000)", "-", stats, len(responses.markets), None)
    )
    return rows


async def bench_async(
    backend: str,
    keys: fx.Keys,
    responses: fx.Responses,
    floors: dict[str, Stats],
    plan: Plan,
) -> list[Row]:
    rows: list[Row] = []

    # kalshi_anyio over an in-memory stream
    name = "kalshi_anyio.AsyncKalshiClient"
    for key in KEYS:
        stream = fx.AsyncFakeStream(responses.balance_raw)
        with fx.fake_connect(kalshi_anyio._io, stream) as connects:
            client = kalshi_anyio.AsyncKalshiClient(**fx.client_kwargs(keys.by_name(key)))
            _check_balance(await client.portfolio.balance())
            _check_wire(stream.last_request, "GET /trade-api/v2/portfolio/balance ", True)
            stats = await time_async(
                client.portfolio.balance,
                plan.warmup_small,
                plan.balance[key],
                plan.row_seconds,
                floor=floor_jobs(keys)[key],
            )
            await client.aclose()
        assert connects[0] == 1, "the connection was not reused"
        rows.append(
            Row(
                name,
                backend,
                "(a) portfolio.balance()",
                key,
                stats,
                len(responses.balance),
                floors[key].median_us,
            )
        )
    stream = fx.AsyncFakeStream(responses.markets_raw)
    with fx.fake_connect(kalshi_anyio._io, stream) as connects:
        client = kalshi_anyio.AsyncKalshiClient(**fx.client_kwargs(keys.rsa))
        _check_markets(await client.markets.list(limit=1000), responses.market_count)
        _check_wire(stream.last_request, "GET /trade-api/v2/markets?limit=1000 ", False)
        stats = await time_async(
            lambda: client.markets.list(limit=1000),
            plan.warmup_markets,
            plan.markets,
            plan.row_seconds * 2,
        )
        await client.aclose()
    assert connects[0] == 1, "the connection was not reused"
    rows.append(
        Row(name, backend, "(b) markets.list(limit=1000)", "-", stats, len(responses.markets), None)
    )

    # kalshi_httpx over httpx.MockTransport
    name = "kalshi_httpx.AsyncKalshiClient"
    for key in KEYS:
        transport, handler = fx.mock_transport(responses.balance)
        aclient = kalshi_httpx.AsyncKalshiClient(
            transport=transport, **fx.client_kwargs(keys.by_name(key))
        )
        _check_balance(await aclient.portfolio.balance())
        assert handler.last_request is not None
        assert handler.last_request.url.path == "/trade-api/v2/portfolio/balance"
        assert "kalshi-access-signature" in handler.last_request.headers
        stats = await time_async(
            aclient.portfolio.balance,
            plan.warmup_small,
            plan.balance[key],
            plan.row_seconds,
            floor=floor_jobs(keys)[key],
        )
        await aclient.aclose()
        rows.append(
            Row(
                name,
                backend,
                "(a) portfolio.balance()",
                key,
                stats,
                len(responses.balance),
                floors[key].median_us,
            )
        )
    transport, handler = fx.mock_transport(responses.markets)
    aclient = kalshi_httpx.AsyncKalshiClient(transport=transport, **fx.client_kwargs(keys.rsa))
    _check_markets(await aclient.markets.list(limit=1000), responses.market_count)
    stats = await time_async(
        lambda: aclient.markets.list(limit=1000),
        plan.warmup_markets,
        plan.markets,
        plan.row_seconds * 2,
    )
    await aclient.aclose()
    rows.append(
        Row(name, backend, "(b) markets.list(limit=1000)", "-", stats, len(responses.markets), None)
    )
    return rows


# ---- 3. the report --------------------------------------------------------------------------


def _versions() -> str:
    from importlib.metadata import version

    from cryptography.hazmat.backends.openssl.backend import backend as openssl

    names = ("pydantic", "pydantic-core", "h11", "httpx", "anyio", "trio", "cryptography")
    parts = [f"{n} {version(n)}" for n in names]
    parts.append(openssl.openssl_version_text())
    return ", ".join(parts)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_report(
    floors: dict[str, Stats], rows: list[Row], responses: fx.Responses, elapsed: float
) -> None:
    print()
    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{_cpu()} ({os.cpu_count()} CPUs)"
    )
    print(_versions())
    if hasattr(os, "getloadavg"):
        print(
            f"Load average (1 min) at the end: {os.getloadavg()[0]:.2f}; figures from a busy "
            "machine are high and noisy"
        )
    print(
        f"Bodies: GetBalanceResponse {len(responses.balance):,} B; GetMarketsResponse with "
        f"{responses.market_count:,} markets {len(responses.markets):,} B "
        f"({len(responses.markets) / 1e6:.2f} MB)"
    )
    print()
    print(f"1. Signing floor (cryptography directly, message {PRE_SIGN.decode()!r})")
    print(f"   {'signature':<34} {'n':>6} {'median µs':>10} {'p90 µs':>10} {'min µs':>10}")
    labels = {"RSA": "RSA-2048 PSS SHA-256 (salt 32)", "Ed25519": "Ed25519"}
    for key in KEYS:
        s = floors[key]
        print(
            f"   {labels[key]:<34} {s.n:>6} {s.median_us:>10.1f} {s.p90_us:>10.1f} {s.min_us:>10.1f}"
        )
    print()
    print(
        "2. Per call, transport excluded (µs; 'above floor' = median - that key's signing median;\n"
        "   'paired' = median of (call - a bare signature made just before it), which slow and\n"
        "   fast phases of the machine disturb less; the targets use 'above floor')"
    )
    header = (
        f"   {'client':<32} {'backend':<8} {'call':<29} {'key':<8} {'n':>5} "
        f"{'median':>9} {'p90':>9} {'min':>9} {'above floor':>11} {'paired':>7}  {'target':<18} "
        "result"
    )
    print(header)
    print("   " + "-" * (len(header) - 3))
    for row in rows:
        above = f"{row.above_floor_us:>11.1f}" if row.above_floor_us is not None else f"{'':>11}"
        paired = row.stats.paired_us
        paired_text = f"{paired:>7.1f}" if paired is not None else f"{'':>7}"
        if row.floor_us is None:
            target = f"<= {row.target_us:,.0f}"
        else:
            target = f"<= {row.target_us:,.0f} (fl+40)"
        print(
            f"   {row.client:<32} {row.backend:<8} {row.call:<29} {row.key:<8} "
            f"{row.stats.n:>5} {row.stats.median_us:>9,.1f} {row.stats.p90_us:>9,.1f} "
            f"{row.stats.min_us:>9,.1f} "
            f"{above} {paired_text}  {target:<18} {'PASS' if row.passed else 'FAIL'}"
        )
    print()
    failed = [r for r in rows if not r.passed]
    print(
        f"3. Targets: (a) median <= signing floor + {ABOVE_FLOOR_TARGET_US:.0f} µs; "
        f"(b) median <= 40 ms / 3 = {MARKETS_TARGET_US:,.0f} µs. "
        f"{len(rows) - len(failed)} PASS, {len(failed)} FAIL.  ({elapsed:.1f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (under ~10 s)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()

    print("building keys and bodies ...", file=sys.stderr)
    keys = fx.make_keys()
    responses = fx.build_responses(validate_all=not args.quick)

    print("signing floor ...", file=sys.stderr)
    floors = signing_floor(keys, plan)
    rows: list[Row] = []
    print("kalshi_sync ...", file=sys.stderr)
    rows += bench_sync(keys, responses, floors, plan)
    print("kalshi_httpx (sync) ...", file=sys.stderr)
    rows += bench_httpx_sync(keys, responses, floors, plan)
    for backend in ("asyncio", "trio"):
        print(f"async clients on {backend} ...", file=sys.stderr)
        rows += anyio.run(bench_async, backend, keys, responses, floors, plan, backend=backend)

    order = {
        "kalshi_sync.KalshiClient": 0,
        "kalshi_anyio.AsyncKalshiClient": 1,
        "kalshi_httpx.KalshiClient": 2,
        "kalshi_httpx.AsyncKalshiClient": 3,
    }
    rows.sort(
        key=lambda r: (
            r.call[:3],
            order[r.client],
            r.backend,
            KEYS.index(r.key) if r.key in KEYS else 0,
        )
    )
    print_report(floors, rows, responses, time.perf_counter() - started)
    print_raw(bench_raw(keys, responses, plan))
    return 0


def bench_raw(keys: fx.Keys, responses: fx.Responses, plan: Plan) -> list[tuple[str, Stats]]:
    """(b) as a raw call with `kalshi_sync`: the page's bytes, then read by ``json.loads``."""
    stream = fx.FakeStream(responses.markets_raw)
    with fx.fake_connect(kalshi_sync._io, stream):
        client = kalshi_sync.KalshiClient(**fx.client_kwargs(keys.rsa))
        raw = calls.get_markets(limit=1000).raw()
        assert len(json.loads(client.execute(raw).body)["markets"]) == responses.market_count
        timed = [
            ("client.execute(calls.get_markets(limit=1000).raw())", lambda: client.execute(raw)),
            ("  ... then json.loads(response.body)", lambda: json.loads(client.execute(raw).body)),
        ]
        results = [
            (label, time_sync(run, plan.warmup_markets, plan.markets, plan.row_seconds * 2))
            for label, run in timed
        ]
        client.close()
    return results


def print_raw(results: list[tuple[str, Stats]]) -> None:
    """The raw-call figures, for scale next to (b): no target applies to them."""
    print()
    print("4. For scale, not a target: (b) as a raw call (kalshi_sync, no model built; µs)")
    for label, stats in results:
        print(f"   {label:<55} median {stats.median_us:>9,.1f}   min {stats.min_us:>9,.1f}")


if __name__ == "__main__":
    sys.exit(main())
