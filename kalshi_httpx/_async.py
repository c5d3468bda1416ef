"""`AsyncKalshiClient` over httpx: pooling, optional HTTP/2, transport injection.

httpx does the HTTP; the core does everything Kalshi (signing, retries, pages, error mapping).
``scripts/unasync.py`` writes the blocking twin, ``_sync.py``, from this file.

Requests go straight to an httpx transport (`httpx.AsyncHTTPTransport`, or the one passed in).
The core already does what `httpx.AsyncClient.send` would add on top (headers, redirects are
not followed by the API, no cookies, no auth flow), and skipping it saves about 60 µs a call.
A ready `httpx.AsyncClient` passed as ``http_client`` is used through its public ``send``, with
all its settings but ``follow_redirects`` (a redirect is an answer, never followed); so is an
internal one when the environment names a proxy (``HTTPS_PROXY``, ``ALL_PROXY``, ...) and
``proxy=`` is not given, since only `httpx.AsyncClient` knows how to route by the environment.
``proxy=`` goes to the transport itself, or for a SOCKS5 proxy to `_async_socks`' transport,
which runs the core's SOCKS5 handshake. A pool built here is built anew in a forked
process and on a new asyncio event loop (see `_pool`).

With a rate limiter on, a call takes one of the pool's connection slots before its request is
paced (see `_gate`). That needs the pool's size, so it is done for a pool built here over
HTTP/1.1 with a connection limit; over HTTP/2 calls share connections as streams, and queue
only past the server's limit of concurrent streams.
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import random
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import anyio
import httpx
from anyio import sleep as _sleep

from kalshi_httpx import _pool

# unasync: async only
from kalshi_httpx._async_http2 import mend_pools

# unasync: end
from kalshi_httpx._async_socks import AsyncSocksTransport
from kalshi_httpx._body import aread_reply
from kalshi_httpx._errors import library_failure, map_exceptions
from kalshi_httpx._gate import AsyncGate

# unasync: blocking only: from kalshi_httpx._deadline import DEADLINE
# unasync: blocking only: from kalshi_httpx._guard import guard_pools
from kalshi_httpx._proxy import httpx_proxy, proxy_host
from kalshi_proto.auth import Credentials, Passphrase, drop_secret_frames
from kalshi_proto.errors import ConfigurationError, KalshiError, LocalProtocolError
from kalshi_proto.proxy import ProxyUrl, check_route
from kalshi_proto.rest._async_base import AsyncClientBase, Logger
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.hold import Hold
from kalshi_proto.rest.http11 import ACCEPT_ENCODING
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.rest.settings import KeyInput, RateLimitSetting

__all__ = ["AsyncKalshiClient"]

#: Where clients log retries and, at DEBUG, each attempt (see `kalshi_proto.rest.client.LogLine`).
_log = logging.getLogger("kalshi_httpx")


_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")
# What calls run on: an httpx transport, or an httpx client (for proxies from the environment).
_Holder = httpx.AsyncBaseTransport | httpx.AsyncClient
_URL_CACHE_SIZE = 256
_ACCEPT = ("Accept-Encoding", ACCEPT_ENCODING)


def _proxy_in_environment(scheme: str) -> bool:
    """True when the environment (or the OS settings urllib reads) names a proxy for ``scheme``."""
    proxies = urllib.request.getproxies()
    return scheme in proxies or "all" in proxies


def _kind(value: object) -> str:
    """A value's type for an error message: ``httpx.Client``, ``str``."""
    kind = type(value)
    package = kind.__module__.partition(".")[0]
    return kind.__qualname__ if package == "builtins" else f"{package}.{kind.__qualname__}"


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: the API authenticates every request by signature, and
    reading ``Set-Cookie`` on every response is measurable overhead."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class AsyncKalshiClient(AsyncClientBase):
    """The Kalshi REST API over httpx (a transport, or an `httpx.AsyncClient` you pass in).

    The arguments up to ``logger`` are every client's, described in
    `kalshi_proto.rest._async_base.AsyncClientBase` and docs/rest.md; then:

    Args:
        http2: negotiate HTTP/2 (needs the ``http2`` extra, which installs ``h2``).
        limits: httpx connection-pool limits.
        verify: TLS verification: True, False, or an `ssl.SSLContext`.
        transport: an httpx transport to use instead of `httpx.AsyncHTTPTransport` (tests,
            proxies); `aclose` closes it.
        http_client: a ready `httpx.AsyncClient`; the other httpx options are then ignored and
            the client is not closed by `aclose`.
        proxy: a proxy to reach the API through: an ``http://``, ``https://``, ``socks5://``
            or ``socks5h://`` URL, or a `kalshi_proto.proxy.ProxyUrl`. Given, it is used
            instead of any proxy the environment names; not with ``transport`` or
            ``http_client``, which connect as they are configured to.
        proxy_ssl_context: the TLS context for the session with an ``https://`` ``proxy``
            itself (otherwise httpx's default, which trusts certifi's certificates, or the file
            ``SSL_CERT_FILE`` names).

    Raises:
        ConfigurationError: an argument is of the wrong type or out of range (``limits`` not
            an `httpx.Limits`, ``verify`` not a bool or an `ssl.SSLContext`, ``http2`` not a
            bool or without h2 installed, ``transport`` without ``handle_async_request``,
            ``http_client`` not an `httpx.AsyncClient` or already closed, ``proxy`` not a
            usable proxy URL or given with ``transport`` or ``http_client``,
            ``proxy_ssl_context`` not an `ssl.SSLContext`, and those of every client).
        CredentialsError: the key arguments are incomplete, contradictory or unusable.
    """

    @drop_secret_frames
    def __init__(
        self,
        *,
        key_id: str | None = None,
        private_key: KeyInput | None = None,
        private_key_path: str | os.PathLike[str] | None = None,
        passphrase: Passphrase | None = None,
        credentials: Credentials | None = None,
        demo: bool = False,
        base_url: str | None = None,
        allow_any_host: bool = False,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        rate_limit: RateLimitSetting = None,
        user_agent: str | None = None,
        rng: Callable[[], float] | None = None,
        logger: Logger | None = None,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        proxy: str | ProxyUrl | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if limits is not None and not isinstance(limits, httpx.Limits):
            raise ConfigurationError(
                "limits must be an httpx.Limits (for example httpx.Limits(max_connections=20)) "
                f"or None, got {type(limits).__name__}"
            )
        if not isinstance(verify, bool | ssl.SSLContext):
            raise ConfigurationError(
                "verify must be True, False or an ssl.SSLContext (for a CA file: "
                f"ssl.create_default_context(cafile=...)), got {type(verify).__name__}"
            )
        if not isinstance(http2, bool):
            raise ConfigurationError(f"http2 must be True or False, got {_kind(http2)}")
        # The blocking and async flavours are easy to mix up; either would fail only at the
        # first call, with an error that does not say why.
        if transport is not None and not callable(getattr(transport, "handle_async_request", None)):
            raise ConfigurationError(
                "transport must be an httpx.AsyncBaseTransport (one with handle_async_request), "
                f"got {_kind(transport)}"
            )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                f"http_client must be an httpx.AsyncClient, got {_kind(http_client)}"
            )
        if http_client is not None and http_client.is_closed:
            raise ConfigurationError("http_client is closed: pass one that is open")
        routed = httpx_proxy(proxy, proxy_ssl_context)
        if routed is not None and (transport is not None or http_client is not None):
            given = "transport" if transport is not None else "http_client"
            raise ConfigurationError(
                f"give proxy= or {given}=, not both: a {given} of your own connects as it is "
                "configured to (httpx.AsyncClient(proxy=...), httpx.AsyncHTTPTransport(proxy=...))"
            )
        super().__init__(
            key_id=key_id,
            private_key=private_key,
            private_key_path=private_key_path,
            passphrase=passphrase,
            credentials=credentials,
            demo=demo,
            base_url=base_url,
            allow_any_host=allow_any_host,
            retry=retry,
            timeout=timeout,
            rate_limit=rate_limit,
            user_agent=user_agent,
            rng=rng,
            logger=logger,
        )
        if http2 and http_client is None:
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "http2=True needs the h2 package: pip install 'kalshi-sansio[http2]'"
                ) from None
        base = self.config.base_url
        if routed is not None:
            check_route(proxy_host(routed), base)
        self._origin = base.origin
        # Parsed URLs by request target: parsing one costs more than the rest of the request.
        self._urls: dict[str, httpx.URL] = {}
        self._transport: httpx.AsyncBaseTransport | None = None
        self._http: httpx.AsyncClient | None = http_client
        self._owns_http = http_client is None
        # Builds a new pool (see _renew and _retire); None for a pool passed in, which is the
        # caller's to look after.
        self._new_pool: Callable[[], _Holder] | None = None
        # Pools replaced because httpcore may have broken them (see _retire), each closed by the
        # last call that ran on it, or with the client; and how many calls are in httpx on
        # each pool. The blocking flavour's threads change both under the lock, a plain one
        # (taken and given back in C: a Ctrl-C cannot leave it held).
        self._retired: list[_Holder] = []
        self._busy: dict[_Holder, int] = {}
        self._pools_lock = threading.Lock()
        # Slots for rate-limited calls, one per connection of a pool built here (see _gate).
        self._gate_size: int | None = None
        self._gate: AsyncGate | None = None
        if http_client is None and (
            transport is not None or routed is not None or not _proxy_in_environment(base.scheme)
        ):
            if transport is None:

                def new_transport() -> httpx.AsyncBaseTransport:
                    made: httpx.AsyncBaseTransport
                    if isinstance(routed, ProxyUrl):
                        made = AsyncSocksTransport(
                            routed, http2=http2, limits=limits or _LIMITS, verify=verify
                        )
                    else:
                        made = httpx.AsyncHTTPTransport(
                            http2=http2, limits=limits or _LIMITS, verify=verify, proxy=routed
                        )
                    # The blocking pool closes connections other threads use (see _guard).
                    # Both flavours' HTTP/2 handlers are mended (see _async_http2).
                    # unasync: blocking only: guard_pools(made)
                    # unasync: async only
                    mend_pools(made)
                    # unasync: end
                    return made

                self._new_pool = new_transport
                self._transport = new_transport()
            else:
                self._transport = transport
        elif http_client is None:

            def new_client() -> httpx.AsyncClient:
                made = httpx.AsyncClient(
                    http2=http2,
                    limits=limits or _LIMITS,
                    verify=verify,
                    timeout=None,
                    cookies=_NoCookies(),
                )
                # unasync: blocking only: guard_pools(made)
                # unasync: async only
                mend_pools(made)
                # unasync: end
                return made

            self._new_pool = new_client
            self._http = new_client()
        if self._new_pool is not None and not http2:
            self._gate_size = (limits or _LIMITS).max_connections
        # The process and the event loop the pool belongs to (None in the blocking twin).
        self._forks = _pool.FORKS
        self._loop = _pool.current_loop()

    async def aclose(self) -> None:
        """Close the httpx client (unless it was passed in); the client cannot be used
        afterwards."""
        self._check_home()
        self._closed = True
        with self._pools_lock:
            retired, self._retired = self._retired, []
        for pool in retired:
            await pool.aclose()
        if self._transport is not None:
            await self._transport.aclose()
        elif self._owns_http and self._http is not None:
            await self._http.aclose()

    async def _claim(self, deadline: float, hold: Hold) -> None:
        if self._closed:
            raise LocalProtocolError("the client is closed")
        if self._gate_size is None:
            return
        if self._gate is None:  # built on first use, on the loop that uses it
            self._gate = AsyncGate(self._gate_size)
        await self._gate.acquire(deadline, hold)

    async def _send(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        try:
            if self._closed:
                raise LocalProtocolError("the client is closed")
            url = self._urls.get(request.target)
            if url is None:
                url = httpx.URL(self._origin + request.target)
                if len(self._urls) >= _URL_CACHE_SIZE:
                    self._urls.clear()
                self._urls[request.target] = url
            # The headers are not kept in a local: one that holds the signature would show in
            # a traceback that prints locals.
            # The pool this call runs on: the client may replace it meanwhile (see _retire).
            with self._pools_lock:
                busy = self._current()
                assert busy is not None
                self._busy[busy] = self._busy.get(busy, 0) + 1
            try:
                with map_exceptions(url):
                    if self._transport is not None:
                        outgoing = httpx.Request(
                            request.method,
                            url,
                            headers=(*request.headers, _ACCEPT),
                            content=request.body or None,
                            extensions={"timeout": dict.fromkeys(_TIMEOUT_KEYS, timeout)},
                        )
                        # unasync: blocking only: outgoing.extensions[DEADLINE] = deadline
                        reply, body = await aread_reply(
                            self._transport.handle_async_request(outgoing),
                            deadline,
                            self._pool_lost,
                            busy,
                            # unasync: async only
                            extensions=outgoing.extensions if self._new_pool is not None else None,
                            # unasync: end
                        )
                    else:
                        assert self._http is not None
                        if self._http.is_closed and not self._owns_http:
                            raise LocalProtocolError(
                                "the httpx client given as http_client is closed; close this "
                                "client too, or build one with an open httpx client"
                            )
                        outgoing = self._http.build_request(
                            request.method,
                            url,
                            headers=(*request.headers, _ACCEPT),
                            content=request.body or None,
                            timeout=timeout,
                        )
                        # unasync: blocking only: outgoing.extensions[DEADLINE] = deadline
                        # Never a redirect, whatever the client says: httpx would send the signed
                        # request, body and all, to the Location's host.
                        sent = self._http.send(outgoing, stream=True, follow_redirects=False)
                        reply, body = await aread_reply(
                            sent,
                            deadline,
                            self._pool_lost,
                            busy,
                            # unasync: async only
                            extensions=outgoing.extensions if self._new_pool is not None else None,
                            # unasync: end
                        )
            except KeyboardInterrupt:
                # Wherever it landed in httpx, a Ctrl-C may have left httpcore's pool broken:
                # a connection taken for good, or a lock held (its locks are taken in a Python
                # __enter__, which an interrupt can leave before the with block owns the lock,
                # and every later call would wait for it). The pool is replaced (_pool_lost).
                self._pool_lost(busy)
                raise
            except Exception as exc:
                # Neither the SDK's error nor httpx's (map_exceptions translated those): a fault
                # inside httpcore or h2, which leaves the connection unusable (see
                # _errors.library_failure). A pool built here is replaced, and the call fails as
                # a connection failure. What a pool passed in raises is the caller's to read.
                if isinstance(exc, KalshiError) or self._new_pool is None:
                    raise
                self._retire(busy)
                raise library_failure(exc) from exc
            finally:
                with self._pools_lock:
                    # (pop with a default: _renew may have cleared the counts meanwhile)
                    left = self._busy.pop(busy, 1) - 1
                    if left:
                        self._busy[busy] = left
                    # (not while it is still the current pool of an open client: it is being
                    # replaced, and calls may begin on it meanwhile)
                    last = (
                        not left
                        and busy in self._retired
                        and (busy is not self._current() or self._closed)
                    )
                    if last:
                        self._retired.remove(busy)
                if last:  # the last call on a replaced pool closes it
                    # unasync: async only
                    with anyio.CancelScope(shield=True):
                        await busy.aclose()
                    # unasync: end
                    # unasync: blocking only: busy.close()
            if self._closed and (self._transport is not None or self._owns_http):
                # Closed during this call. httpx's pool may have opened the call's connection
                # after the close (the call was waiting for a free one), or dropped it unclosed
                # (it was still connecting); either way the close did not see it. Close the pool
                # again, which takes every connection it knows out of it at once; then the
                # call's own, in case the pool no longer knows it (closing it under the pool's
                # feet would leave a dead socket there for other calls to trip on). The pool is
                # the one this call ran on, which may have been replaced since.
                await busy.aclose()
                connection = reply.extensions.get("network_stream")
                # A blocking pool built here closes each of its connections itself, after the
                # last request on it (see _guard): an HTTP/2 one carries other calls' too.
                # unasync: async only
                guarded = False
                # unasync: end
                # unasync: blocking only: guarded = self._new_pool is not None
                if connection is not None and not guarded:
                    await connection.aclose()
            received = tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in reply.headers.raw
            )
            return HttpResponse(status=reply.status_code, headers=received, body=body)
        finally:
            try:
                hold.release()  # a slot `_claim` took, if any
            except BaseException:
                hold.release()  # interrupted as it began (a Ctrl-C): this does what is left
                raise

    def _pool_lost(self, pool: _Holder) -> None:
        # httpcore's pool may be broken for good: a call on it failed as it closed its response
        # (see kalshi_httpx._body), or a Ctrl-C landed in httpx (see _send). A pool built here
        # is replaced, unless it was already, and the calls still running on it finish there;
        # the last of them closes it. A pool passed in is the caller's: the loss is logged.
        if self._new_pool is None:
            self._logger.log(
                logging.WARNING,
                "a call was interrupted inside httpx; the connection pool passed in may have "
                "lost a connection, or kept a lock held, for good (httpcore 1.0.9)",
                extra={},
            )
            return
        self._retire(pool)

    def _retire(self, pool: _Holder | None) -> None:
        # Replace a pool built here that httpcore may have broken, unless it was replaced
        # already. The calls still running on it finish there, and the last of them closes it
        # (see _send); the client's aclose closes what is left. A closed client makes no more
        # calls: its pool is not replaced.
        if self._new_pool is None or pool is None:
            return
        with self._pools_lock:
            if pool is not self._current():
                return
            if pool not in self._retired:  # (a closed client's pool stays current: once is enough)
                self._retired.append(pool)
            if self._closed:
                return
        # Built outside the lock, which the calls of other threads take as they begin and end:
        # a new pool loads its certificates, some 10 ms. Two threads may lose one pool at once:
        # the pool one of them builds replaces it, and the other's, never used, is dropped (it
        # has no connection to close).
        fresh = self._new_pool()
        with self._pools_lock:
            if pool is self._current():
                self._use(fresh)

    def _current(self) -> _Holder | None:
        # The pool calls run on now.
        return self._transport if self._transport is not None else self._http

    def _use(self, pool: _Holder) -> None:
        if isinstance(pool, httpx.AsyncClient):
            self._http = pool
        else:
            self._transport = pool

    def _check_home(self) -> None:
        if self._forks != _pool.FORKS or self._loop is not _pool.current_loop():
            self._renew()

    def _renew(self) -> None:
        # The pool cannot serve this process or this event loop: after os.fork() its
        # connections are the parent's too, and on a new asyncio loop (a second asyncio.run,
        # say) those of the old loop do not work. A pool of our own is built anew; one passed
        # in is left alone. An inherited pool is forgotten (see _pool.forget); an old loop's
        # idle connections are shut down, and the garbage collector frees their sockets.
        forked = self._forks != _pool.FORKS
        if forked:
            self._guarded(self.rate_limiter)
        self._forks = _pool.FORKS
        self._loop = _pool.current_loop()
        # The old loop's calls are over, and its pools cannot be closed here; after os.fork()
        # the parent's are not this process's to count or close, and its lock may have been
        # held by a thread the child does not have.
        self._pools_lock = threading.Lock()
        self._busy = {}
        self._retired = []
        if self._new_pool is None:
            return
        pool = self._current()
        assert pool is not None
        if forked:
            _pool.forget(pool)
        # unasync: async only
        else:
            _pool.abandon(pool)
        # unasync: end
        self._use(self._new_pool())
        self._gate = None

    async def _sleep(self, seconds: float) -> None:
        await _sleep(seconds)

    def _clocks(self) -> tuple[float, int]:
        return time.monotonic(), time.time_ns() // 1_000_000

    def _default_rng(self) -> Callable[[], float]:
        # The OS's randomness: processes forked from one parent do not back off in step.
        return random.SystemRandom().random

    def _default_logger(self) -> Logger:
        return _log

    def _new_lock(self) -> AbstractContextManager[object]:
        return threading.Lock()
