"""A client in a process forked after it pooled connections (``multiprocessing`` with ``fork``).

The idle connections a child inherits are the parent's too: a request on one mixes the
child's bytes with the parent's, and on TLS both sides stall until they time out. Every client
counts the forks of its process and, when the count moves, leaves its inherited connections
alone and opens new ones. The first tests fork for real (blocking clients); the others move
the count by hand, which is what a fork does, so that they run on every flavour.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import warnings
from collections.abc import Callable

import httpx
import pytest

import kalshi_anyio._io
import kalshi_httpx
import kalshi_httpx._pool
import kalshi_sync._io
from kalshi_proto.errors import TransportError
from kalshi_proto.rest import _async_base, _sync_base
from kalshi_proto.rest.ratelimit import RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import Driver, Flavour, backend_of, maybe

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy.disabled()


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


def fork_counter(flavour: Flavour) -> object:
    """The module whose ``FORKS`` the flavour's client watches."""
    if flavour.family == "httpx":
        return kalshi_httpx._pool
    return kalshi_sync._io if flavour.family == "kalshi_sync" else kalshi_anyio._io


def fork() -> int:
    """``os.fork()``, quietly: the test server's thread makes Python 3.12+ warn about it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def wait_for(pid: int, seconds: float) -> int:
    """The exit code of child ``pid``; kill it and fail if it runs longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child was still running after {seconds} s")


class Child:
    """A forked child that runs ``work`` (which returns its exit code, 0 for success) and
    leaves without running any of pytest; what it raised comes back through a pipe."""

    def __init__(self, work: Callable[[], int]) -> None:
        read_end, write_end = os.pipe()
        pid = fork()
        if pid == 0:
            code = 1
            try:
                code = work()
            except BaseException as exc:
                os.write(write_end, repr(exc).encode()[:1000])
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid = pid
        self._read_end = read_end

    def result(self, seconds: float = 20) -> tuple[int, str]:
        """The child's exit code and what it raised, once it ends (see `wait_for`)."""
        try:
            exit_code = wait_for(self._pid, seconds)
            return exit_code, os.read(self._read_end, 1000).decode()
        finally:
            os.close(self._read_end)


@pytest.mark.flavours("sync")
async def test_a_forked_child_and_its_parent_each_use_their_own_connections(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY, timeout=3.0) as client:
        assert (await maybe(client.exchange.status())).trading_active is not None

        def three_calls() -> int:
            for _ in range(3):
                client.exchange.status()
            return 0

        child = Child(three_calls)
        try:
            for _ in range(3):
                assert (await maybe(client.exchange.status())).trading_active is not None
        finally:
            exit_code, error = child.result()
    assert exit_code == 0, f"the child failed: {error}"
    assert len(kx.server.requests("/exchange/status")) == 7
    assert kx.server.connections() == 2  # the parent's, reused, and the child's own


@pytest.mark.flavours("sync")
async def test_forked_children_draw_different_jitter(kx: Driver) -> None:
    # Copies of one seeded generator would give every child the same back-off, so children
    # retrying after the same outage would all come back at the same moment.
    async with kx.client() as client:
        read_end, write_end = os.pipe()
        pids = []
        for _ in range(2):
            pid = fork()
            if pid == 0:
                try:
                    os.write(write_end, f"{client._core._rng()!r}\n".encode())
                finally:
                    os._exit(0)
            pids.append(pid)
        os.close(write_end)
        for pid in pids:
            assert wait_for(pid, 20) == 0
        with os.fdopen(read_end) as drawn:
            first, second = drawn.read().split()
    assert first != second


async def test_after_a_fork_the_idle_connections_are_left_alone(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = fork_counter(kx.flavour)
    inherited: list[object] = getattr(counter, "_INHERITED", [])
    left_before = len(inherited)
    async with kx.client(retry=NO_RETRY) as client:
        await maybe(client.exchange.status())
        assert kx.server.connections() == 1
        monkeypatch.setattr(counter, "FORKS", counter.FORKS + 1)  # type: ignore[attr-defined]
        await maybe(client.exchange.status())
        await maybe(client.exchange.status())
        assert kx.server.connections() == 2  # a new one, then reused
    abandoned = inherited[left_before:]
    del inherited[left_before:]
    if kx.is_async:
        # An async client keeps what it inherited, unclosed (closing could reach into the
        # parent's event loop); here, in one process, the test closes it.
        assert len(abandoned) == 1
        for pool in abandoned:
            await pool.aclose()  # type: ignore[attr-defined]
    else:
        assert abandoned == []


@pytest.mark.flavours("async")
async def test_closing_an_async_client_after_a_fork_leaves_what_it_inherited_alone(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closing them would go through the parent's copy of the event loop, as a call would.
    counter = fork_counter(kx.flavour)
    inherited: list[object] = counter._INHERITED  # type: ignore[attr-defined]
    left_before = len(inherited)
    async with kx.client(retry=NO_RETRY) as client:
        await maybe(client.exchange.status())
        monkeypatch.setattr(counter, "FORKS", counter.FORKS + 1)  # type: ignore[attr-defined]
    abandoned = inherited[left_before:]
    del inherited[left_before:]
    assert len(abandoned) == 1
    assert kx.server.connections() == 1
    for pool in abandoned:
        await pool.aclose()  # type: ignore[attr-defined]


@pytest.mark.flavours("httpx")
async def test_after_a_fork_a_pool_passed_in_is_left_to_its_owner(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport
    if kx.is_async:
        transport = httpx.AsyncHTTPTransport(verify=kx.server.ssl_context())
    else:
        transport = httpx.HTTPTransport(verify=kx.server.ssl_context())
    async with kx.client(transport=transport) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient | kalshi_httpx.AsyncKalshiClient)
        await maybe(client.exchange.status())
        monkeypatch.setattr(kalshi_httpx._pool, "FORKS", kalshi_httpx._pool.FORKS + 1)
        await maybe(client.exchange.status())
        assert client._transport is transport
    assert kx.server.connections() == 1


@pytest.mark.flavours("httpx")
async def test_after_a_fork_the_internal_proxy_client_is_built_anew(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a proxy in the environment the pool is an httpx client of the SDK's own. The proxy
    # port here has no listener, so every request fails to connect without leaving the machine.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead_port}")
    async with kx.client(retry=NO_RETRY) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient | kalshi_httpx.AsyncKalshiClient)
        inherited = client._http
        assert inherited is not None and client._transport is None
        monkeypatch.setattr(kalshi_httpx._pool, "FORKS", kalshi_httpx._pool.FORKS + 1)
        with pytest.raises(TransportError):
            await maybe(client.exchange.status())
        assert client._http is not inherited and client._http is not None
    abandoned = kalshi_httpx._pool._INHERITED
    if kx.is_async:
        assert abandoned[-1] is inherited
        abandoned.pop()
        assert isinstance(inherited, httpx.AsyncClient)
        await inherited.aclose()
    else:
        assert inherited.is_closed


@pytest.mark.flavours("sync")
async def test_a_child_forked_while_a_thread_held_the_rate_guard_can_still_call(
    kx: Driver,
) -> None:
    # The guard is a lock held while a reservation is computed. Held by a thread of the parent
    # as it forked, the child's copy would stay held for good: its first call would hang.
    limiter = RateLimiter.for_tier("basic")
    async with kx.client(retry=NO_RETRY, timeout=3.0, rate_limit=limiter) as client:
        await maybe(client.exchange.status())
        guard = limiter.guard
        assert guard is not None

        def two_calls() -> int:
            client.exchange.status()
            client.exchange.status()
            return 0 if limiter.guard is not guard else 2

        with guard:  # as a parent's thread reserving at the moment of the fork
            child = Child(two_calls)
        exit_code, error = child.result()
        assert (await maybe(client.exchange.status())).trading_active is not None
        assert limiter.guard is guard  # the parent's own is left as it was
    assert exit_code == 0, f"the child failed: {error}"
    assert len(kx.server.requests("/exchange/status")) == 4


async def test_after_a_fork_the_rate_guard_is_renewed(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = fork_counter(kx.flavour)
    inherited: list[object] = getattr(counter, "_INHERITED", [])
    left_before = len(inherited)
    limiter = RateLimiter.for_tier("basic")
    async with kx.client(retry=NO_RETRY, rate_limit=limiter) as client:
        await maybe(client.exchange.status())
        parents = limiter.guard
        assert parents is not None
        child = os.getpid() + 1
        for base in (_async_base, _sync_base):
            monkeypatch.setattr(base, "getpid", lambda: child)
        monkeypatch.setattr(counter, "FORKS", counter.FORKS + 1)  # type: ignore[attr-defined]
        await maybe(client.exchange.status())
        renewed = limiter.guard
        assert renewed is not None and renewed is not parents
        await maybe(client.exchange.status())
        assert limiter.guard is renewed
    for pool in inherited[left_before:]:
        await pool.aclose()  # type: ignore[attr-defined]
    del inherited[left_before:]


def test_the_counters_count_forks_in_the_child() -> None:
    read_end, write_end = os.pipe()
    before = (kalshi_sync._io.FORKS, kalshi_anyio._io.FORKS, kalshi_httpx._pool.FORKS)
    pid = fork()
    if pid == 0:
        try:
            after = (kalshi_sync._io.FORKS, kalshi_anyio._io.FORKS, kalshi_httpx._pool.FORKS)
            os.write(write_end, repr(after).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    assert wait_for(pid, 20) == 0
    with os.fdopen(read_end) as seen:
        assert seen.read() == repr(tuple(count + 1 for count in before))
    assert (kalshi_sync._io.FORKS, kalshi_anyio._io.FORKS, kalshi_httpx._pool.FORKS) == before
