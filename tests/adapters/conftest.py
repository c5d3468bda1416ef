"""One suite, four REST clients: the flavour parametrisation and the driver every test uses.

Each client test (``test_rest_clients.py``) is written once, as an ``async def`` taking the
``kx`` fixture, and runs six times:

===================  =====================================  ==========================
id                   client                                 how the test runs
===================  =====================================  ==========================
kalshi_sync          ``kalshi_sync.KalshiClient``           no event loop (see below)
httpx_sync           ``kalshi_httpx.KalshiClient``          no event loop
kalshi_anyio-asyncio ``kalshi_anyio.AsyncKalshiClient``     anyio plugin, asyncio
kalshi_anyio-trio    ``kalshi_anyio.AsyncKalshiClient``     anyio plugin, trio
httpx_async-asyncio  ``kalshi_httpx.AsyncKalshiClient``     anyio plugin, asyncio
httpx_async-trio     ``kalshi_httpx.AsyncKalshiClient``     anyio plugin, trio
===================  =====================================  ==========================

The client module overrides ``anyio_backend`` to follow ``flavour`` (`backend_of`), so the
anyio plugin runs the async flavours on their backend. For a sync flavour ``anyio_backend`` is
None, the plugin steps aside, and `pytest_pyfunc_call` below runs the test coroutine by hand:
it must finish on its first step. Every client call of a sync client returns a value, `maybe` passes it through without
suspending, and a test that awaited anything real (a sleep, a socket) would fail loudly. That
is how the suite shows the blocking clients need no event loop.

Markers:
    ``@pytest.mark.flavours("async")`` (or ``"sync"``, or family names ``"kalshi_sync"``,
    ``"kalshi_anyio"``, ``"httpx"``) limits a test to some flavours.
    ``@pytest.mark.known_bug("httpx", reason=..., raises=..., leaks=False)`` marks the
    variants of those families (all flavours when none is named) ``xfail(strict=True)``: a
    documented SDK bug, not a flaky test. With ``raises``, only that exception counts as the
    bug; any other failure (a broken assertion about what the server saw, say) still fails the
    test. ``leaks=True`` says the bug leaves a socket to the garbage collector, which would
    otherwise be an error of its own. A test may carry several, for different families.

Every flavour test runs with ``error::ResourceWarning``, and the ``kx`` fixture collects garbage
after the test, so a socket, transport or stream a client leaves open fails the test that
leaked it.
"""

from __future__ import annotations

import gc
import inspect
import socket
import ssl
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import pytest

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.server import ApiServer, KeyPair, RawServer, running_server
from tests.helpers.sockets import sockets_to

T = TypeVar("T")

Client = (
    kalshi_sync.KalshiClient
    | kalshi_httpx.KalshiClient
    | kalshi_anyio.AsyncKalshiClient
    | kalshi_httpx.AsyncKalshiClient
)

#: Retries fast enough for tests: three attempts, 10 ms base back-off.
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, retry_max_delay=0.05, total_timeout=20)
#: The key to use when a test does not say: the server's Ed25519 key (loading an RSA PEM costs
#: ~35 ms of key checks per client; the RSA tests ask for it by name).
DEFAULT_KEY = "default"


@dataclass(frozen=True)
class Flavour:
    """One client flavour: its class, its TLS argument, and the anyio backend it runs on."""

    id: str
    family: str  #: "kalshi_sync", "kalshi_anyio" or "httpx"
    cls: type[Client]
    tls_argument: str  #: "ssl_context" (raw adapters) or "verify" (httpx)
    backend: str | None  #: None for the blocking clients

    @property
    def is_async(self) -> bool:
        return self.backend is not None


FLAVOURS = (
    Flavour("kalshi_sync", "kalshi_sync", kalshi_sync.KalshiClient, "ssl_context", None),
    Flavour("httpx_sync", "httpx", kalshi_httpx.KalshiClient, "verify", None),
    Flavour(
        "kalshi_anyio-asyncio",
        "kalshi_anyio",
        kalshi_anyio.AsyncKalshiClient,
        "ssl_context",
        "asyncio",
    ),
    Flavour(
        "kalshi_anyio-trio", "kalshi_anyio", kalshi_anyio.AsyncKalshiClient, "ssl_context", "trio"
    ),
    Flavour("httpx_async-asyncio", "httpx", kalshi_httpx.AsyncKalshiClient, "verify", "asyncio"),
    Flavour("httpx_async-trio", "httpx", kalshi_httpx.AsyncKalshiClient, "verify", "trio"),
)


def _selected(flavour: Flavour, names: tuple[str, ...]) -> bool:
    kind = "async" if flavour.is_async else "sync"
    return any(name in (kind, flavour.family, flavour.id) for name in names)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flavours(*names): run only on these client flavours")
    config.addinivalue_line(
        "markers",
        "known_bug(*families, reason, raises, leaks): strict xfail for an SDK bug in these families",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "flavour" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("flavours")
    bugs = list(metafunc.definition.iter_markers("known_bug"))
    params = []
    for flavour in FLAVOURS:
        if only is not None and not _selected(flavour, tuple(only.args)):
            continue
        # An unclosed socket, transport or stream is an error (see the kx fixture), except in
        # the variants of a known bug that leaks one.
        leak_filter = "error::ResourceWarning"
        marks: list[pytest.MarkDecorator] = []
        for bug in bugs:
            if bug.args and not _selected(flavour, tuple(bug.args)):
                continue
            assert not marks, f"two known_bug markers apply to {flavour.id}"
            marks.append(
                pytest.mark.xfail(
                    strict=True, reason=bug.kwargs["reason"], raises=bug.kwargs.get("raises")
                )
            )
            if bug.kwargs.get("leaks", False):
                leak_filter = "ignore::ResourceWarning"
        marks.append(pytest.mark.filterwarnings(leak_filter))
        params.append(pytest.param(flavour, id=flavour.id, marks=marks))
    metafunc.parametrize("flavour", params)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    flavour = pyfuncitem.funcargs.get("flavour")
    if not isinstance(flavour, Flavour) or flavour.is_async:
        return None
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    run_without_loop(pyfuncitem.obj(**arguments))
    return True


def run_without_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, with no event loop; fail if it tries to."""
    try:
        yielded = coroutine.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coroutine.close()
    raise AssertionError(
        f"a sync-flavour test suspended on {yielded!r}: a blocking client must not need an "
        "event loop"
    )


# ---- helpers the tests await -----------------------------------------------------------------


async def maybe(value: Awaitable[T] | T) -> T:
    """Await ``value`` if it is awaitable (async clients), else return it (sync clients)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def collect(items: Iterable[T] | AsyncIterable[T]) -> list[T]:
    """Every item of a sync or async iterator."""
    if isinstance(items, AsyncIterable):
        return [item async for item in items]
    return list(items)


async def first(items: Iterator[T] | AsyncIterator[T]) -> T:
    """The next item of a sync or async iterator."""
    if isinstance(items, AsyncIterator):
        return await anext(items)
    return next(items)


async def close_iterator(items: Iterator[T] | AsyncIterator[T]) -> None:
    """Close a partly consumed generator, sync or async, so nothing is left to the GC."""
    closer = getattr(items, "aclose", None) or getattr(items, "close", None)
    if closer is not None:
        await maybe(closer())


def run_in_threads(work: Callable[[], object], count: int) -> list[BaseException]:
    """Run ``work`` in ``count`` threads started together; the exceptions they raised. Fails
    if a thread is still running after a minute."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body() -> None:
        try:
            start.wait(5)
            work()
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return errors


# ---- the driver ------------------------------------------------------------------------------


class Driver:
    """What a test needs to build and drive clients of its flavour against the test servers."""

    def __init__(self, flavour: Flavour, server: ApiServer, cert_file: Path) -> None:
        self.flavour = flavour
        self.server = server
        self._cert_file = cert_file

    @property
    def is_async(self) -> bool:
        return self.flavour.is_async

    def tls(self, context: ssl.SSLContext | None = None) -> dict[str, Any]:
        """The TLS keyword argument of this flavour, trusting the test CA by default."""
        return {self.flavour.tls_argument: context or self.server.ssl_context()}

    def build(
        self,
        *,
        key: KeyPair | str | None = DEFAULT_KEY,
        base_url: str | None = None,
        retry: RetryPolicy | None = FAST_RETRY,
        **kwargs: Any,
    ) -> Client:
        """A client of this flavour; the caller closes it (prefer `client`).

        ``key`` is a `KeyPair`, None for an unauthenticated client, or the server's Ed25519 key
        by default. Other keyword arguments go to the constructor as they are.
        """
        if key == DEFAULT_KEY:
            key = self.server.ed25519
        if isinstance(key, KeyPair):
            kwargs.setdefault("key_id", key.key_id)
            kwargs.setdefault("private_key", key.pem)
        if retry is not None:
            kwargs.setdefault("retry", retry)
        kwargs.setdefault("timeout", 5.0)
        for name, value in self.tls().items():
            kwargs.setdefault(name, value)
        return self.flavour.cls(base_url=base_url or self.server.base_url, **kwargs)

    @asynccontextmanager
    async def client(self, **kwargs: Any) -> AsyncIterator[Client]:
        """`build` a client and close it when the block ends, however it ends."""
        client = self.build(**kwargs)
        try:
            yield client
        finally:
            await self.close(client)

    async def close(self, client: Client) -> None:
        if isinstance(client, kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient):
            client.close()
        else:
            await client.aclose()

    @asynccontextmanager
    async def entered(self, client: Client) -> AsyncIterator[Client]:
        """The client's own context manager: ``with`` for blocking clients, ``async with``."""
        if isinstance(client, kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient):
            with client as entered:
                yield entered
        else:
            async with client as entered_async:
                yield entered_async

    def now(self) -> float:
        """The clock the client's core runs on, in every flavour: the process's monotonic one."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        if self.is_async:
            await anyio.sleep(seconds)
        else:
            time.sleep(seconds)

    @asynccontextmanager
    async def raw_server(
        self,
        answer: bytes,
        drip: float = 0.0,
        keep_open: bool = False,
        alpn: tuple[str, ...] = (),
        records: tuple[bytes, ...] = (),
    ) -> AsyncIterator[RawServer]:
        """A `RawServer` that answers every request with ``answer`` (a byte every ``drip``
        seconds, if given; on one connection as long as the client keeps it, with
        ``keep_open``; choosing among ``alpn`` by ALPN, if given; the first request with
        ``records``, one TLS record each, in one write); stopped after the block."""
        raw = RawServer(
            self.server.ca,
            self._cert_file,
            answer=answer,
            drip=drip,
            keep_open=keep_open,
            alpn=alpn,
            records=records,
        )
        try:
            yield raw
        finally:
            raw.stop()

    @asynccontextmanager
    async def silent_listener(self) -> AsyncIterator[int]:
        """A loopback port that takes TCP connections (into the kernel's backlog) and never
        answers, not even the TLS handshake."""
        listener = socket.create_server(("127.0.0.1", 0))
        try:
            yield int(listener.getsockname()[1])
        finally:
            listener.close()


def open_sockets_to(port: int, state: str | None = None) -> int:
    """`tests.helpers.sockets.sockets_to`, or a skip where there is no /proc to read."""
    if not Path("/proc/self/fd").is_dir():  # pragma: no cover - the suite runs on Linux
        pytest.skip("needs /proc to look at open sockets")
    return sockets_to(port, state)


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _server_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-server")


@pytest.fixture(scope="session")
def api_server(_server_files: Path) -> Iterator[ApiServer]:
    """The uvicorn test server, for the whole session.

    Everything alive once it has started (modules, the spec, the examples) is moved out of the
    collector's sight with `gc.freeze`, so the collection after each test (see `kx`) walks only
    what the test made: ~1 ms instead of ~50 ms.
    """
    with running_server(_server_files) as server:
        gc.collect()
        gc.freeze()
        try:
            yield server
        finally:
            gc.unfreeze()


@pytest.fixture
def fresh_api_server(api_server: ApiServer) -> Iterator[ApiServer]:
    """The test server, with no recorded requests and no scripted faults."""
    api_server.reset()
    yield api_server
    api_server.reset()


def backend_of(flavour: Flavour) -> str | None:
    """The value of the anyio plugin's ``anyio_backend`` fixture for a flavour: "asyncio" or
    "trio" for the async clients, None for the blocking ones (the plugin then leaves the test
    alone). A module of flavour tests overrides ``anyio_backend`` with it."""
    return flavour.backend


@pytest.fixture
def kx(flavour: Flavour, fresh_api_server: ApiServer, _server_files: Path) -> Iterator[Driver]:
    """The driver for the flavour this variant of the test runs on.

    After the test, a garbage collection makes any socket the test left open raise its
    ResourceWarning here, in the test that leaked it (an error; see `pytest_generate_tests`).
    """
    yield Driver(flavour, fresh_api_server, _server_files / "server.pem")
    gc.collect()
