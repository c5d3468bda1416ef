"""Serve the local exchange (`kalshi_proto.sim`) on loopback, from Python or the command line.

From Python::

    async with serve_exchange(tls=True) as exchange:
        async with AsyncKalshiClient(**exchange.client_options()) as client:
            ...

From a shell: ``python -m kalshi_anyio.sim --port 8080`` prints the base URL and writes the
ready-made account's private key to a file, then serves until interrupted.

The exchange runs the scenario (``"default"`` or your own mapping) on its own clock, which starts
at the scenario's start time and advances with the wall clock. A trader account with a fresh key
pair (RSA by default) and $10,000 is ready for you; its key id and private key are on the handle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kalshi_anyio.serve import DEFAULT_IDLE_TIMEOUT, Server, serve_rest
from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.sim.exchange import Exchange
from kalshi_proto.sim.rest import ExchangeApp, Faults
from kalshi_proto.sim.scenario import build_exchange
from kalshi_proto.sim.scenarios import SCENARIOS

__all__ = ["LocalExchange", "main", "serve_exchange", "serve_exchange_in_thread"]

PREFIX = "/trade-api/v2"
TRADER = "trader"
TRADER_KEY_ID = "local-trader-key"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LocalExchange:
    """A running local exchange: where it listens and the ready-made account's credentials."""

    server: Server
    app: ExchangeApp
    key_id: str
    private_key_pem: bytes
    #: The portal of the background thread that serves it (`serve_exchange_in_thread`), or
    #: None when it is served on the caller's own event loop (`serve_exchange`).
    portal: anyio.from_thread.BlockingPortal | None = field(default=None, repr=False)

    @property
    def exchange(self) -> Exchange:
        """The exchange state. Change it, or read more than one value of it, with `call`: the
        server's thread may be answering a request meanwhile."""
        return self.app.exchange

    def call(self, function: Callable[..., T], /, *args: Any) -> T:
        """Run ``function(*args)`` where the exchange is served, between two requests, and return
        its result (or raise its exception).

        Served by `serve_exchange_in_thread`, the function runs on the background thread's event
        loop, so it never interleaves with a request being answered: use it to settle a market,
        close one, or read a consistent snapshot from a test thread. Served by `serve_exchange`
        on your own event loop, it runs at once (call it from that loop's thread).

        Raises:
            LocalProtocolError: the exchange has stopped (its ``with`` block has ended).
        """
        if self.portal is None:
            return function(*args)
        try:
            return self.portal.call(function, *args)
        except RuntimeError as exc:
            if str(exc) != "This portal is not running":
                raise  # the function's own error
            raise LocalProtocolError(
                "the local exchange has stopped: its serve_exchange_in_thread block has ended"
            ) from None

    @property
    def base_url(self) -> str:
        """The trade API base URL, e.g. ``https://127.0.0.1:54321/trade-api/v2``."""
        return self.server.origin + PREFIX

    def client_options(self, *, httpx: bool = False) -> dict[str, Any]:
        """Keyword arguments for a client of this exchange, signed as the ready-made account.

        Args:
            httpx: for a `kalshi_httpx` client (TLS trust goes in ``verify=``); otherwise for
                `kalshi_sync` and `kalshi_anyio` (``ssl_context=``).
        """
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "key_id": self.key_id,
            "private_key": self.private_key_pem,
        }
        context = self.server.client_ssl_context()
        if context is not None:
            options["verify" if httpx else "ssl_context"] = context
        return options

    def __repr__(self) -> str:
        return f"<LocalExchange {self.base_url} key_id={self.key_id!r}>"


def _scenario(scenario: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(scenario, str):
        factory = SCENARIOS.get(scenario)
        if factory is None:
            raise ConfigurationError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
        return factory()
    return scenario


def _new_key(key_type: str) -> tuple[bytes, bytes]:
    if key_type == "rsa":
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ConfigurationError(f"key_type must be 'rsa' or 'ed25519', got {key_type!r}")
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def build_app(
    *,
    scenario: str | Mapping[str, Any] = "default",
    faults: Faults | None = None,
    seed: int = 0,
    balance: Decimal | int = Decimal("10000"),
    key_type: str = "rsa",
) -> tuple[ExchangeApp, bytes]:
    """The exchange app for a scenario with the ready-made account added; returns (app, private PEM)."""
    chosen = _scenario(scenario)
    exchange = build_exchange(chosen, seed=seed)
    private, public = _new_key(key_type)
    exchange.add_account(TRADER, balance, {TRADER_KEY_ID: public})
    # (ExchangeApp refuses a faults= that is not a Faults.)
    rng = random.Random(seed).random if isinstance(faults, Faults) and faults.active else None
    return ExchangeApp(exchange, faults=faults, rng=rng, actions=chosen.get("actions", ())), private


@asynccontextmanager
async def serve_exchange(
    *,
    scenario: str | Mapping[str, Any] = "default",
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool | ssl.SSLContext = False,
    faults: Faults | None = None,
    seed: int = 0,
    balance: Decimal | int = Decimal("10000"),
    key_type: str = "rsa",
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> AsyncIterator[LocalExchange]:
    """Run the local exchange on loopback for the duration of the ``async with`` block.

    Args:
        scenario: a scenario name (``"default"``) or a scenario mapping (see
            `kalshi_proto.sim.scenario`).
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one.
        tls: True for TLS with throwaway test certificates (needs ``trustme``, the ``sim``
            extra), or your own server `ssl.SSLContext`.
        faults: faults to inject (429s, 5xx bursts, latency, dropped connections).
        seed: seeds generated ids and fault decisions.
        balance: the ready-made account's starting balance in dollars.
        key_type: ``"rsa"`` or ``"ed25519"`` for the ready-made account's key.
        idle_timeout: seconds a connection may go without sending a byte before the server
            closes it (None: never).

    Yields:
        The `LocalExchange` handle.

    Raises:
        ConfigurationError: an argument of a wrong type or out of range (a float ``balance``,
            a ``seed`` outside 0 to 2**32 - 1, a ``port`` outside 0 to 65535, ...).
        ValueError: the scenario is malformed; the message names the entry.
        OSError: the address cannot be listened on.
    """
    app, private = build_app(scenario=scenario, faults=faults, seed=seed, balance=balance, key_type=key_type)
    async with serve_rest(app, host=host, port=port, tls=tls, idle_timeout=idle_timeout) as server:
        yield LocalExchange(server=server, app=app, key_id=TRADER_KEY_ID, private_key_pem=private)


@contextmanager
def serve_exchange_in_thread(**kwargs: Any) -> Iterator[LocalExchange]:
    """`serve_exchange` on an asyncio loop in a background thread, for blocking code.

    Takes the arguments of `serve_exchange`. The exchange state belongs to that thread while the
    block runs: change it through `LocalExchange.call`.
    """
    with (
        anyio.from_thread.start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(serve_exchange(**kwargs)) as local,
    ):
        yield dataclasses.replace(local, portal=portal)


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key to ``path``, readable and writable by its owner only from the first
    byte: the file is made with mode 0600 (and an existing one set to it) before anything is
    written, rather than written with the usual mode and narrowed afterwards."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file that was there keeps its own mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """The ``python -m kalshi_anyio.sim`` command."""
    parser = argparse.ArgumentParser(prog="python -m kalshi_anyio.sim", description="Serve the local Kalshi exchange on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--scenario", default="default", help="a scenario name or a path to a scenario JSON file")
    parser.add_argument("--tls", action="store_true", help="serve TLS with throwaway test certificates (needs trustme)")
    parser.add_argument("--ca-file", type=Path, default=Path("local-exchange-ca.pem"), help="with --tls, where to write the certificate of the throwaway CA for clients to trust")
    parser.add_argument("--key-file", type=Path, default=Path("local-exchange-key.pem"), help="where to write the trader's private key")
    parser.add_argument("--key-type", choices=("rsa", "ed25519"), default="rsa")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--fault-429", type=float, default=0.0, metavar="SHARE", help="answer this share of requests with 429")
    parser.add_argument("--retry-after", type=float, default=None, metavar="SECONDS", help="Retry-After on injected 429s")
    parser.add_argument("--fault-5xx", type=float, default=0.0, metavar="SHARE", help="start a 503 burst on this share of requests")
    parser.add_argument("--burst", type=int, default=1, help="requests per 5xx burst")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="added to every response")
    parser.add_argument("--fault-drop", type=float, default=0.0, metavar="SHARE", help="cut this share of responses off mid-body")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="SECONDS", help="close connections idle this long (0: never)")
    args = parser.parse_args(argv)
    scenario: str | Mapping[str, Any] = args.scenario
    if args.scenario not in SCENARIOS:
        try:
            loaded = json.loads(Path(args.scenario).read_text())
            build_exchange(loaded)  # a malformed scenario stops here, with its entry named
        except (OSError, ValueError) as exc:
            parser.error(f"--scenario {args.scenario}: {exc}")
        scenario = loaded
    try:
        faults = Faults(
            rate_limit_share=args.fault_429,
            retry_after=args.retry_after,
            error_share=args.fault_5xx,
            error_burst=args.burst,
            latency=args.latency,
            drop_share=args.fault_drop,
        )
    except ConfigurationError as exc:
        parser.error(str(exc))

    async def run() -> None:
        async with serve_exchange(
            scenario=scenario, host=args.host, port=args.port, tls=args.tls, faults=faults,
            seed=args.seed, key_type=args.key_type, idle_timeout=args.idle_timeout or None,
        ) as local:
            # Every file is written before the first line, which tells a waiting script that
            # the exchange is ready.
            _write_private(args.key_file, local.private_key_pem)
            if local.server.ca_pem is not None:
                args.ca_file.write_bytes(local.server.ca_pem)
            print(f"local Kalshi exchange at {local.base_url}")
            print(f"  key id:      {local.key_id}")
            print(f"  private key: {args.key_file}")
            if local.server.ca_pem is not None:
                print(f"  trust CA:    {args.ca_file} (ssl.create_default_context(cafile=...))")
            print("Ctrl-C stops it.", flush=True)
            await anyio.sleep_forever()

    try:
        anyio.run(run, backend=args.backend)
    except KeyboardInterrupt:
        pass
    except ConfigurationError as exc:  # an option out of range (--seed, --port), before listening
        parser.error(str(exc))
    except OSError as exc:  # the address is taken, say, or a file cannot be written
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
