"""The part of every async REST client that is not I/O: construction, the facade, the run loop.

An adapter subclasses `AsyncClientBase` and supplies a few small methods: ``_send`` (one HTTP
exchange, raising `TransportError` subclasses), ``_claim`` (a connection slot held ahead of a
rate-limited request, recorded in the call's `Hold`), ``_sleep``, ``_clocks`` (monotonic
seconds and Unix milliseconds, read at one moment), ``aclose``, and its defaults for the jitter
source, the logger and the rate limiter's lock (``_default_rng``, ``_default_logger``,
``_new_lock``).
Everything else, from building the signed request to retrying, paging and handing log lines to
the logger, is here or deeper in the core, so no adapter repeats it.

``scripts/unasync.py`` writes the blocking twin, ``_sync_base.py``, from this file.
"""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from os import getpid
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self, SupportsIndex, TypeVar

from kalshi_proto.auth import Credentials, Passphrase, drop_secret_frames
from kalshi_proto.environ import credentials_from_env
from kalshi_proto.errors import (
    ConfigurationError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse, Page
from kalshi_proto.rest.client import (
    DEBUG,
    CallOptions,
    CallRun,
    Claim,
    Finished,
    RestConfig,
    RestCore,
    SendRequest,
    Sleep,
)
from kalshi_proto.rest.generated.async_facade import AsyncResources
from kalshi_proto.rest.hold import Hold
from kalshi_proto.rest.pagination import aiterate_pages
from kalshi_proto.rest.ratelimit import CostTable, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.rest.settings import (
    KeyInput,
    RateLimitSetting,
    build_rest_config,
    check_hooks,
    rate_limiter_for,
)

__all__ = ["AsyncClientBase", "AsyncClientView", "Logger"]

T = TypeVar("T")


#: The constructor arguments that name a key, which `from_env` reads from the environment.
_KEY_ARGUMENTS = frozenset({"key_id", "private_key", "private_key_path", "passphrase", "credentials"})


class Logger(Protocol):
    """What a client needs of a logger: a `logging.Logger` or `logging.LoggerAdapter`."""

    def isEnabledFor(self, level: int) -> bool: ...  # the logging module's spelling

    def log(self, level: int, msg: object, *, extra: dict[str, object]) -> None: ...


class AsyncClientBase(AsyncResources, abc.ABC):
    """The shared body of the async clients; see the module docstring.

    Args:
        key_id: the API key id (with ``private_key`` or ``private_key_path``).
        private_key: the private key: PEM text or bytes, or a loaded RSA or Ed25519 key.
        private_key_path: the path of a PEM key file (``~`` is expanded).
        passphrase: the passphrase of an encrypted PEM, as str, bytes or a callable.
        credentials: ready-made credentials instead of the three arguments above.
        demo: talk to the demo environment instead of production.
        base_url: an explicit base URL (the local exchange, a proxy); see ``allow_any_host``.
        allow_any_host: accept a base URL outside Kalshi's domains (loopback is always accepted).
        retry: the retry policy; ``RetryPolicy.disabled()`` turns retries off.
        timeout: seconds one attempt may take.
        rate_limit: client-side token buckets: a tier name (``"basic"``, ...), a `RateLimiter`,
            or None (the default) to send without waiting. See `configure_rate_limit`.
        user_agent: the ``User-Agent`` header.
        rng: a source of floats in [0, 1) for retry jitter; the adapter's default otherwise.
        logger: where the client logs retries (INFO) and, at DEBUG, each attempt and rate-limit
            wait; the adapter's package logger (``kalshi_sync``, ``kalshi_anyio`` or
            ``kalshi_httpx``) otherwise. See `kalshi_proto.rest.client.LogLine`.
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
    ) -> None:
        check_hooks(rng, logger)
        config = build_rest_config(
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
            user_agent=user_agent,
        )
        self._core = RestCore(
            config,
            rng=rng or self._default_rng(),
            rate_limiter=self._guarded(rate_limiter_for(rate_limit)),
        )
        #: Set by the adapter's `aclose`: a call made afterwards fails at once, before it
        #: reserves rate-limit tokens.
        self._closed = False
        self._logger = logger if logger is not None else self._default_logger()
        self._bind_resources(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A client whose key comes from ``KALSHI_KEY_ID`` and ``KALSHI_PRIVATE_KEY`` (or
        ``KALSHI_PRIVATE_KEY_PATH``, with ``KALSHI_PRIVATE_KEY_PASSPHRASE``).

        Other keyword arguments are passed to the constructor. With none of the variables set
        the client is unauthenticated.

        Raises:
            ConfigurationError: a key argument (``key_id``, ``private_key``,
                ``private_key_path``, ``passphrase``, ``credentials``) was given too: the key
                comes from the environment here; pass key arguments to the constructor instead.
        """
        given = sorted(_KEY_ARGUMENTS.intersection(kwargs))
        if given:
            raise ConfigurationError(
                f"from_env() takes the key from the environment, so it takes no {', '.join(given)}; "
                f"pass key arguments to {cls.__name__}(...) instead"
            )
        return cls(credentials=credentials_from_env(), **kwargs)

    @property
    def config(self) -> RestConfig:
        """The client's configuration."""
        return self._core.config

    @property
    def is_authenticated(self) -> bool:
        """True when the client can sign private calls."""
        return self._core.is_authenticated

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The client-side rate limiter, or None when it is off."""
        return self._core.rate_limiter

    async def configure_rate_limit(self) -> RateLimiter:
        """Size the client-side token buckets from ``GET /account/limits``, price the operations
        from ``GET /account/endpoint_costs``, and turn the limiter on.

        Returns:
            The limiter now in use.

        Raises:
            RemoteProtocolError: the server's figures cannot size a limiter (a refill rate of
                0, a negative cost); the client's limiter is left as it was.
        """
        limits = await self.account.limits()
        listed = await self.account.endpoint_costs()
        try:
            costs = CostTable.from_endpoint_costs(
                listed.default_cost,
                ((row.method, row.path, row.cost) for row in listed.endpoint_costs),
            )
            limiter = RateLimiter.from_limits(
                limits.read.refill_rate,
                limits.read.bucket_capacity,
                limits.write.refill_rate,
                limits.write.bucket_capacity,
                costs=costs,
            )
        except ConfigurationError as exc:  # the figures came from the server, not the caller
            raise RemoteProtocolError(
                f"GET /account/limits and GET /account/endpoint_costs gave figures no rate "
                f"limiter can use: {exc}"
            ) from exc
        self._core.rate_limiter = self._guarded(limiter)
        return limiter

    def _guarded(self, limiter: RateLimiter | None) -> RateLimiter | None:
        # Threads sharing this client, or clients sharing the limiter, reserve under one lock;
        # a forked process under one of its own (see `RateLimiter.install_guard`). An adapter
        # calls this again from `_check_home` after a fork.
        if limiter is not None:
            process = getpid()
            if not limiter.has_guard_for(process):
                limiter.install_guard(self._new_lock(), epoch=process)
        return limiter

    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None
    ) -> AsyncClientView:
        """This client with another attempt timeout or retry policy, for the calls made through
        the view returned: the same facade (``view.orders.create_v2(...)``), connections, key,
        rate limiter and logger. None keeps the client's setting. The view has no ``aclose``:
        closing the client ends it too.

        Raises:
            ConfigurationError: ``timeout`` or ``retry`` is of the wrong type or out of range.
        """
        return AsyncClientView(self, CallOptions(retry=retry, timeout=timeout))

    async def execute(self, call: Call[T], options: CallOptions | None = None) -> T:
        """Send a call built by `kalshi_proto.rest.generated.calls` and return its result.

        Retries, rate-limit waits and the total timeout follow the client's configuration, or
        ``options`` where it sets them.

        Raises:
            AuthRequiredError: the call needs credentials the client does not have.
            LocalProtocolError: the client is closed.
            ApiError: the API answered with an error status (after any retries).
            TransportError: the connection failed (after any retries).
            TypeError: ``call`` is not a `Call`.
        """
        if self._closed:
            raise LocalProtocolError("the client is closed")
        self._check_home()
        now, wall_ms = self._clocks()
        run = self._core.start(call, now, trace=self._logger.isEnabledFor(DEBUG), options=options)
        # The connection slot of the call: claimed ahead of a rate-limited request, or taken by
        # `_send`, which gives it back after each exchange.
        hold = Hold()
        try:
            while True:
                step = run.next_step(now, wall_ms)
                if run.log:
                    self._write_log(run)
                if isinstance(step, SendRequest):
                    try:
                        response = await self._send(
                            step.request, step.timeout, now + step.timeout, hold
                        )
                    except TransportError as exc:
                        now, wall_ms = self._clocks()
                        run.receive_failure(exc, now)
                    else:
                        now, wall_ms = self._clocks()
                        run.receive_response(response, now, wall_ms)
                elif isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    if self._closed:  # while it slept: the tokens it holds go back
                        raise LocalProtocolError("the client is closed")
                    now, wall_ms = self._clocks()
                elif isinstance(step, Claim):
                    try:
                        await self._claim(now + step.timeout, hold)
                    except TransportError as exc:
                        now, wall_ms = self._clocks()
                        run.receive_failure(exc, now)
                    else:
                        if self._closed:  # while it waited for a connection
                            raise LocalProtocolError("the client is closed")
                        now, wall_ms = self._clocks()
                else:
                    assert isinstance(step, Finished)
                    return run.result()
        finally:
            try:
                hold.release()
            except BaseException:
                hold.release()  # interrupted as it began (a Ctrl-C): this does what is left
                raise
            if not run.done:  # left early: cancelled, or the client closed meanwhile
                run.abandon()

    def _write_log(self, run: CallRun[Any]) -> None:
        logger = self._logger
        for line in run.log:
            logger.log(line.level, line.message, extra=line.fields)
        run.log.clear()

    def iterate(
        self,
        call: Call[Page[T]],
        max_pages: int | None = None,
        options: CallOptions | None = None,
    ) -> AsyncIterator[T]:
        """Yield every item of every page of a list call, fetching pages lazily; each page's
        call follows ``options`` where it sets them (see `execute`).

        Raises:
            ValueError: ``max_pages`` is less than 1.
            TypeError: ``call`` is not a `Call` of a list operation, ``max_pages`` is not an
                int or None, or ``options`` not a `CallOptions` or None.
        """
        if options is None:
            return aiterate_pages(self.execute, call, max_pages)
        if not isinstance(options, CallOptions):
            raise TypeError(f"options must be a CallOptions or None, got {type(options).__name__}")

        async def execute(page_call: Call[Page[T]]) -> Page[T]:
            return await self.execute(page_call, options)

        return aiterate_pages(execute, call, max_pages)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        core = getattr(self, "_core", None)
        if core is None:  # its __init__ failed: a traceback that shows locals may show it
            return f"{type(self).__name__}(<not initialised>)"
        credentials = core.config.credentials
        who = f"key_id={credentials.key_id!r}" if credentials else "unauthenticated"
        return f"{type(self).__name__}({core.config.base_url.url!r}, {who})"

    # unasync: async only
    def __enter__(self) -> NoReturn:
        # Python's own error ("does not support the context manager protocol") does not say why.
        raise TypeError(f"{type(self).__name__} is an async client: use 'async with', not 'with'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ refuses
        return None  # ``with`` looks both up before it calls __enter__

    # unasync: end
    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # Used by pickle, copy.copy and copy.deepcopy alike. A copy would share the original's
        # connections and facade (closing one would not close the other), and a key must not
        # travel in a pickle.
        raise TypeError(
            f"{type(self).__name__} objects cannot be copied or pickled: they hold connections "
            "and a key. Build another client (from_env() in another process)."
        )

    # ---- supplied by each adapter ----------------------------------------------------------

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection; the client cannot be used afterwards."""

    @abc.abstractmethod
    async def _send(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        """One HTTP exchange within ``timeout`` seconds, that is by ``deadline`` on the
        adapter's clock; raise `TransportError` on failure.

        ``hold`` is the call's connection slot (`Hold`): the one `_claim` took for this
        request, or empty, and then the adapter takes one into it if it limits its
        connections. `_send` gives the slot back when it is done, however it ends.
        """

    @abc.abstractmethod
    async def _claim(self, deadline: float, hold: Hold) -> None:
        """Take a connection slot for the next request into ``hold``, waiting until
        ``deadline`` at most; nothing if the adapter does not limit its connections.

        Raises:
            ConnectTimeout: no slot became free in time.
            LocalProtocolError: the client is closed.
        """

    def _check_home(self) -> None:
        """Renew what the client cannot share with another process or event loop, if the
        caller's is not the one the client last ran in: after ``os.fork()``, under a second
        ``asyncio.run``. Called as each call starts, before it reserves rate-limit tokens;
        nothing by default."""

    @abc.abstractmethod
    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` in the adapter's event loop or thread."""

    @abc.abstractmethod
    def _clocks(self) -> tuple[float, int]:
        """(monotonic seconds, Unix milliseconds), read at one moment."""

    @abc.abstractmethod
    def _default_rng(self) -> Callable[[], float]:
        """The jitter source used when the caller gives none."""

    @abc.abstractmethod
    def _default_logger(self) -> Logger:
        """The adapter's logger, used when the caller gives none."""

    @abc.abstractmethod
    def _new_lock(self) -> AbstractContextManager[object]:
        """A lock for the rate limiter: a `threading.Lock`, as a limiter may be shared by
        clients in different threads (it is never held across an await)."""


class AsyncClientView(AsyncResources):
    """A client's facade with other call options; made by `AsyncClientBase.with_options`.

    Every call goes through the client, with the view's `options` over the client's settings.
    """

    def __init__(self, client: AsyncClientBase, options: CallOptions) -> None:
        self._client = client
        self._options = options
        self._bind_resources(self)

    @property
    def client(self) -> AsyncClientBase:
        """The client the calls go through."""
        return self._client

    @property
    def options(self) -> CallOptions:
        """What this view sets over the client's settings."""
        return self._options

    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None
    ) -> AsyncClientView:
        """A view of the same client with these options over this view's (None keeps them).

        Raises:
            ConfigurationError: ``timeout`` or ``retry`` is of the wrong type or out of range.
        """
        return AsyncClientView(
            self._client, CallOptions(retry=retry, timeout=timeout).over(self._options)
        )

    async def execute(self, call: Call[T]) -> T:
        """`AsyncClientBase.execute` with this view's options."""
        return await self._client.execute(call, self._options)

    def iterate(self, call: Call[Page[T]], max_pages: int | None = None) -> AsyncIterator[T]:
        """`AsyncClientBase.iterate` with this view's options."""
        return self._client.iterate(call, max_pages, self._options)

    def __repr__(self) -> str:
        set_here = ", ".join(
            f"{name}={value!r}"
            for name, value in (("timeout", self._options.timeout), ("retry", self._options.retry))
            if value is not None
        )
        return f"<view of {self._client!r} with {set_here or 'no options'}>"
