"""The pure side of a REST client: from a `Call` to signed requests, waits and a result.

`RestCore` holds what a client is configured with (base URL, credentials, retry policy, the
optional rate limiter, the random source for jitter). For each call it starts a `CallRun`, a
small state machine the adapter drives with the same loop whatever its I/O:

```
run = core.start(call, now)                    # AuthRequiredError here, before any I/O
while True:
    step = run.next_step(now, wall_ms)
    match step:
        case SendRequest():  send step.request (timeout step.timeout), then
                             run.receive_response(response, now, wall_ms)
                             or run.receive_failure(TransportError, now)
        case Sleep():        sleep step.seconds
        case Claim():        take a connection slot (waiting step.timeout at most) and keep it
                             for the next SendRequest; then next_step again, or, if none
                             came, run.receive_failure(ConnectTimeout, now)
        case Finished():     return run.result()   # the parsed value, or raises the error
# and if the adapter leaves the loop early (cancelled, closed, interrupted):
run.abandon()                                  # gives back unspent rate-limit tokens
```

`Claim` comes only when a rate limiter is on. A rate-limited attempt first reserves its turn in
the bucket (`RateLimiter.reserve`) and sleeps until it comes, holding no connection, so calls of
the other bucket find connections free (an order is not held up behind market data). Then it
claims a connection. One that had to wait for it comes late to its turn, and late calls that
got their connections together would go out together, over the budget on the wire; so, holding
the connection, the request is paced too (`RateLimiter.pace`: the same budget, spent at the
moment of sending), and sleeps again if that says so. A request on its turn is not held up. A
claim waits for a connection no longer than one attempt's ``timeout``, as a request that takes
its connection in `SendRequest` does.

The core does not log. A run keeps what an operator would want in a log as `LogLine` values in
``run.log``, which the adapter hands to its logger after each step: every retry (`INFO`) and,
with ``core.start(call, now, trace=True)``, every attempt's outcome and every rate-limit wait
(`DEBUG`). No line holds a header, so no key or signature can reach a log.

The states of a run:

* READY    -- the next attempt may go out: with a rate limiter, reserve its turn (which may
              mean a `Sleep`), claim a connection (`Claim`) and pace the request (which may
              mean another `Sleep`); then sign with the current ``wall_ms`` and emit
              `SendRequest`.
* CLAIMING -- the adapter is taking a connection slot; the next `next_step` means it has one,
              a `receive_failure` that none came.
* WAITING  -- backing off (retry or rate limit) until a known time; `next_step` says `Sleep`.
* SENT     -- a request is out; only `receive_response` / `receive_failure` are accepted.
* DONE     -- `result()` returns the value or raises the final error.

Retries follow `kalshi_proto.rest.retry.RetryPolicy`: GET/HEAD/OPTIONS only, never POST, PUT or
DELETE; ``total_timeout`` bounds the whole run, waits included (`CallTimeout`).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kalshi_proto import __version__
from kalshi_proto.auth import Credentials
from kalshi_proto.environments import BaseUrl
from kalshi_proto.errors import (
    ApiError,
    AuthRequiredError,
    CallTimeout,
    ConfigurationError,
    ConnectError,
    KalshiError,
    LocalProtocolError,
    TransportError,
)
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse
from kalshi_proto.rest.ratelimit import RateLimiter, Reservation, check_clock, priced_as
from kalshi_proto.rest.retry import (
    MAX_SECONDS,
    RetryDecision,
    RetryPolicy,
    check_number,
    parse_http_date_ms,
    parse_retry_after,
)

__all__ = [
    "DEBUG",
    "INFO",
    "USER_AGENT",
    "CallOptions",
    "CallRun",
    "Claim",
    "Finished",
    "LogLine",
    "RestConfig",
    "RestCore",
    "SendRequest",
    "Sleep",
    "Step",
]

T = TypeVar("T")

#: The ``User-Agent`` every adapter sends unless configured otherwise.
USER_AGENT = f"kalshi-sansio/{__version__}"

# What a header value may hold: printable ASCII and Latin-1 letters, no edge spaces.
_USER_AGENT = re.compile(r"[!-~\xa1-\xff](?:[ -~\xa0-\xff]*[!-~\xa1-\xff])?")


def _check_retry(retry: object) -> None:
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError(
            "retry must be a RetryPolicy (for example RetryPolicy(max_attempts=3) or "
            f"RetryPolicy.disabled()), got {type(retry).__name__}"
        )


def _check_timeout(timeout: object) -> float:
    # An attempt's timeout, as a float: positive, finite (a socket needs a deadline it can wait
    # for) and within MAX_SECONDS.
    check_number("timeout", timeout)
    seconds = float(timeout)  # type: ignore[arg-type]  # check_number let only numbers through
    if not seconds > 0:
        raise ConfigurationError(f"timeout must be positive, got {seconds}")
    if seconds == math.inf:
        raise ConfigurationError(f"timeout must be finite, got {seconds}")
    if seconds > MAX_SECONDS:
        raise ConfigurationError(
            f"timeout must be at most {MAX_SECONDS:.0f} seconds, got {seconds}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class RestConfig:
    """How a REST client talks to the API; shared by every adapter.

    Args:
        base_url: where to send requests (see `kalshi_proto.environments.resolve_base_url`).
        credentials: the key that signs private calls, or None for public calls only.
        retry: the retry policy (``RetryPolicy.disabled()`` turns retries off).
        timeout: seconds one attempt may take (connect, send and read), a finite number,
            capped by what is left of ``retry.total_timeout``.
        user_agent: the ``User-Agent`` header.
    """

    base_url: BaseUrl
    credentials: Credentials | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, BaseUrl):
            raise ConfigurationError(
                "base_url must be a BaseUrl (kalshi_proto.environments.resolve_base_url builds "
                f"one from a URL, with the host policy), got {type(self.base_url).__name__}"
            )
        if self.credentials is not None and not isinstance(self.credentials, Credentials):
            raise ConfigurationError(
                f"credentials must be a Credentials or None, got {type(self.credentials).__name__}"
            )
        _check_retry(self.retry)
        object.__setattr__(self, "timeout", _check_timeout(self.timeout))
        agent = self.user_agent
        if not isinstance(agent, str) or not _USER_AGENT.fullmatch(agent):
            raise ConfigurationError(
                "user_agent must be a non-empty single line of printable Latin-1 characters"
            )


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call settings that override a client's: for the calls of a
    ``client.with_options(...)`` view, or one ``client.execute(call, options)``.

    Args:
        retry: the retry policy for these calls, or None for the client's.
        timeout: seconds one attempt may take, or None for the client's; as `RestConfig`'s.

    Raises:
        ConfigurationError: a field of the wrong type or out of range (as in `RestConfig`).
    """

    retry: RetryPolicy | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.retry is not None:
            _check_retry(self.retry)
        if self.timeout is not None:
            object.__setattr__(self, "timeout", _check_timeout(self.timeout))

    def over(self, other: CallOptions | None) -> CallOptions:
        """These options on top of ``other``: each field set here wins, the rest are other's."""
        if other is None:
            return self
        return CallOptions(
            retry=self.retry if self.retry is not None else other.retry,
            timeout=self.timeout if self.timeout is not None else other.timeout,
        )


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send ``request`` and report the outcome; give up on it after ``timeout`` seconds."""

    request: HttpRequest
    timeout: float


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds``, then ask for the next step again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Claim:
    """Take a connection slot, waiting at most ``timeout`` seconds (one attempt's) for a free
    one; keep it for the request of the next `SendRequest`, and ask for the next step again.

    If no slot becomes free in time, report `ConnectTimeout` with `CallRun.receive_failure`.
    An adapter that does not limit its connections asks for the next step at once.
    """

    timeout: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The run is over; `CallRun.result` returns the value or raises the error."""


Step = SendRequest | Sleep | Claim | Finished


#: The levels of `LogLine`, the numbers of the ``logging`` module's levels of the same names.
DEBUG = 10
INFO = 20


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line for the adapter's logger: ``logger.log(line.level, line.message,
    extra=line.fields)``.

    ``fields`` carries the same facts for structured logs and metrics; every key starts with
    ``kalshi_``, so none collides with a ``logging.LogRecord`` attribute:

    * ``kalshi_operation``: the operation id (``"GetMarkets"``); on every line.
    * ``kalshi_attempt``: the attempt the line is about (1 for the first); on every line.
    * ``kalshi_method``, ``kalshi_target``: the request's method and target (path and query);
      on attempt lines.
    * ``kalshi_status``: the HTTP status, or None when no response came; on attempt lines.
    * ``kalshi_elapsed``: seconds from sending the request to its outcome; on attempt lines.
    * ``kalshi_request_id``: the request id the server sent back, or None; on attempt lines.
    * ``kalshi_wait``: seconds the call now waits; on retry and rate-limit lines.
    """

    level: int
    message: str
    fields: dict[str, object]


class _State(enum.Enum):
    READY = "ready"  #: the next attempt may be sent (after any rate-limit wait)
    CLAIMING = "claiming"  #: the adapter is taking a connection slot for the next attempt
    WAITING = "waiting"  #: backing off until ``_wake_at``
    SENT = "sent"  #: a request is out; a response or a failure is expected
    DONE = "done"  #: the result or the error is final


class RestCore:
    """Turns calls into runs for one client; holds the client's configuration.

    Args:
        config: the client's configuration.
        rng: a source of floats in [0, 1) for retry jitter (``random.SystemRandom().random``).
        rate_limiter: client-side token buckets, or None to send without waiting.

    Raises:
        ConfigurationError: an argument is of the wrong kind.
    """

    def __init__(
        self,
        config: RestConfig,
        *,
        rng: Callable[[], float],
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if not isinstance(config, RestConfig):
            raise ConfigurationError(f"config must be a RestConfig, got {type(config).__name__}")
        if not callable(rng):
            raise ConfigurationError(
                f"rng must be a callable returning floats in [0, 1), got {type(rng).__name__}"
            )
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise ConfigurationError(
                f"rate_limiter must be a RateLimiter or None, got {type(rate_limiter).__name__}"
            )
        self.config = config
        self.rate_limiter = rate_limiter
        self._rng = rng
        self._prefix = config.base_url.prefix
        base = [("Accept", "application/json"), ("User-Agent", config.user_agent)]
        self._headers = tuple(base)
        self._json_headers = (*base, ("Content-Type", "application/json"))

    @property
    def is_authenticated(self) -> bool:
        """True when the client has credentials to sign private calls."""
        return self.config.credentials is not None

    def start(
        self,
        call: Call[T],
        now: float,
        *,
        trace: bool = False,
        options: CallOptions | None = None,
    ) -> CallRun[T]:
        """Begin one call; then drive the returned run with `CallRun.next_step`.

        With ``trace`` the run also logs each attempt's outcome and each rate-limit wait at
        `DEBUG` (see `LogLine`); retries are logged either way. ``options`` overrides the
        config's retry policy and attempt timeout for this call.

        Raises:
            AuthRequiredError: the operation needs credentials and the client has none; nothing
                has been sent.
            TypeError: ``call`` is not a `Call`, ``options`` not a `CallOptions` or None, or
                ``now`` is not a number.
            ValueError: ``now`` is NaN or infinite.
        """
        if not isinstance(call, Call):
            raise TypeError(
                "expected a Call built by kalshi_proto.rest.generated.calls "
                f"(calls.get_markets(limit=100), say), got {type(call).__name__}"
            )
        if options is not None and not isinstance(options, CallOptions):
            raise TypeError(
                f"options must be a CallOptions or None, got {type(options).__name__}"
            )
        check_clock(now)
        if call.requires_auth and self.config.credentials is None:
            raise AuthRequiredError(
                f"{call.operation.operation_id} ({call.method} {call.operation.path}) needs "
                "credentials: pass key_id and private_key (or private_key_path), or use from_env()"
            )
        return CallRun(self, call, now, trace=trace, options=options)

    def build_request(self, call: Call[T], wall_ms: int) -> HttpRequest:
        """The `HttpRequest` for one attempt of ``call``, signed with ``wall_ms`` if needed."""
        path = self._prefix + call.path
        headers = self._json_headers if call.body else self._headers
        credentials = self.config.credentials
        if call.requires_auth and credentials is not None:
            headers = headers + credentials.headers(call.method, path, wall_ms)
        return HttpRequest(
            method=call.method, target=call.target(self._prefix), headers=headers, body=call.body
        )


class CallRun(Generic[T]):
    """One call in progress: attempts, waits, and the final value or error."""

    def __init__(
        self,
        core: RestCore,
        call: Call[T],
        now: float,
        *,
        trace: bool = False,
        options: CallOptions | None = None,
    ) -> None:
        self._core = core
        config = core.config
        #: The retry policy and attempt timeout of this run: the options', else the config's.
        self._retry = config.retry if options is None or options.retry is None else options.retry
        self._timeout = (
            config.timeout if options is None or options.timeout is None else options.timeout
        )
        self.call = call
        #: The id the rate limiter prices the call under (`kalshi_proto.rest.ratelimit.priced_as`).
        self._priced_as = priced_as(call.operation.operation_id)
        self.started_at = now
        self.attempts: int = 0
        #: Lines for the adapter's logger, oldest first; the adapter empties the list.
        self.log: list[LogLine] = []
        self._trace = trace
        self._sent: tuple[HttpRequest, float] | None = None  # with trace: the request out, when
        self._state = _State.READY
        self._reserved = False
        self._claimed = False  # the adapter holds a connection slot for the next attempt
        # The tokens reserved, then paced, for the next attempt, until it is sent; given back
        # if the attempt or the run ends first. ``_limiter`` is the limiter they came from (the
        # core's may be replaced meanwhile).
        self._limiter: RateLimiter | None = None
        self._held: Reservation | None = None
        self._paced: Reservation | None = None
        self._wake_at = now
        self._value: T | None = None
        self._error: KalshiError | None = None
        self._deadline = self._retry.deadline(now)

    @property
    def done(self) -> bool:
        """True once `result` is final."""
        return self._state is _State.DONE

    def next_step(self, now: float, wall_ms: int) -> Step:
        """What the adapter should do next.

        Raises:
            LocalProtocolError: a request is out and its outcome has not been reported.
            TypeError, ValueError: ``now`` is not a finite number of seconds.
        """
        check_clock(now)
        state = self._state
        if state is _State.DONE:
            return Finished()
        if state is _State.SENT:
            raise LocalProtocolError("a request is in flight; report its response or failure first")
        if self._deadline is not None and now >= self._deadline:
            return self._fail_timeout()
        if state is _State.WAITING:
            if now < self._wake_at:
                return Sleep(self._wake_at - now)
            self._state = _State.READY
        elif state is _State.CLAIMING:  # the adapter holds a slot now
            self._claimed = True
            self._state = _State.READY
        call = self.call
        if not self._reserved:
            # The call's turn: no connection is held while it waits for it.
            self._reserved = True
            limiter = self._core.rate_limiter
            if limiter is not None:
                refused = limiter.beyond_capacity(self._priced_as, call.items)
                if refused is not None:
                    # Nothing is sent: the exchange would answer 429 on every attempt.
                    self._finish(LocalProtocolError(f"{call.operation.operation_id}: {refused}"))
                    return Finished()
                self._limiter = limiter
                self._held = limiter.reserve_turn(self._priced_as, now, call.items)
                if self._held.wait > 0:
                    return self._rate_wait(self._held.wait, now)
        if self._held is not None:
            if not self._claimed:
                self._state = _State.CLAIMING
                return Claim(self._attempt_timeout(now))
            if self._paced is None:
                # The request holds its connection: pace it, so that one that came late to
                # its turn (it waited for the connection) goes out no faster than the budget.
                assert self._limiter is not None
                self._paced = self._limiter.pace_turn(self._priced_as, now, call.items)
                if self._paced.wait > 0:
                    return self._rate_wait(self._paced.wait, now)
        # Signed before the state changes: if signing fails, nothing went out and `abandon`
        # still gives the reserved tokens back.
        request = self._core.build_request(self.call, wall_ms)
        self.attempts += 1
        self._held = self._paced = None  # spent: the request goes out
        self._claimed = False
        self._state = _State.SENT
        if self._trace:
            self._sent = (request, now)
        return SendRequest(request, self._attempt_timeout(now))

    def _rate_wait(self, wait: float, now: float) -> Step:
        if self._deadline is not None and now + wait >= self._deadline:
            return self._fail_timeout(f"the rate limiter asks for a {wait:.2f}s wait")
        if self._trace:
            self._add_line(
                DEBUG,
                f"waiting {wait:.2f}s for the client-side rate limiter",
                {"kalshi_attempt": self.attempts + 1, "kalshi_wait": wait},
            )
        self._state = _State.WAITING
        self._wake_at = now + wait
        return Sleep(wait)

    def _attempt_timeout(self, now: float) -> float:
        timeout = self._timeout
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - now)
        return timeout

    def receive_response(self, response: HttpResponse, now: float, wall_ms: int) -> None:
        """Report the response to the request of the last `SendRequest`.

        Raises:
            LocalProtocolError: no request is in flight.
            TypeError: ``response`` is not an `HttpResponse`.
        """
        if not isinstance(response, HttpResponse):
            raise TypeError(f"response must be an HttpResponse, got {type(response).__name__}")
        self._expect_sent()
        if self._trace:
            self._log_attempt(now, response.status, str(response.status), response.request_id())
        try:
            self._value = self.call.parse(response, wall_ms=wall_ms)
        except ApiError as exc:
            if response.status == 429:
                self._drain(now)
            elif response.status == 401 and self._core.config.credentials is not None:
                exc.add_note(_unauthorized_note(self._core.config, response, wall_ms))
            retry_after = parse_retry_after(response.header("retry-after"), wall_ms=wall_ms)
            self._after_failure(exc, response.status, retry_after, now)
        except KalshiError as exc:
            self._finish(exc)
        else:
            self._error = None  # an earlier attempt's failure no longer matters
            self._state = _State.DONE

    def receive_failure(self, error: TransportError, now: float) -> None:
        """Report that the last request failed without a complete response, or that no
        connection came for the last `Claim`.

        A failed claim counts as an attempt, as a request that found no connection would.

        Raises:
            LocalProtocolError: no request is in flight and no claim is pending.
            TypeError: ``error`` is not a `TransportError`. Any other exception is a bug to
                raise, not a failed attempt to retry.
        """
        if not isinstance(error, TransportError):
            raise TypeError(
                "error must be a TransportError (ConnectError, ReadError, ...), got "
                f"{type(error).__name__}; any other exception is a bug to raise, not a failed "
                "attempt to retry"
            )
        claiming = self._state is _State.CLAIMING
        if claiming:
            self._give_back()  # the attempt reserved tokens for a request it never sends
            self.attempts += 1
            if self._trace:
                self._add_line(
                    DEBUG,
                    f"no connection for attempt {self.attempts}: {type(error).__name__}: {error}",
                    {"kalshi_attempt": self.attempts},
                )
        else:
            self._expect_sent()
            if self._trace:
                self._log_attempt(now, None, f"{type(error).__name__}: {error}", None)
        final = error.final_reason
        if final is not None:  # another attempt would fail the same way; waiting would not help
            error.add_note(f"not retried: {final}")
            self._finish(error)
            return
        # A connection error (no slot, refused, a failed handshake) comes before any byte of
        # the request is written.
        sent = not claiming and not isinstance(error, ConnectError)
        self._after_failure(error, None, None, now, sent=sent)

    def result(self) -> T:
        """The parsed value of the call.

        Raises:
            LocalProtocolError: the run is not finished.
            KalshiError: the final error of the run (an `ApiError`, a `TransportError`,
                `CallTimeout`, ...).
        """
        if self._state is not _State.DONE:
            raise LocalProtocolError("the call is not finished; keep calling next_step()")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def abandon(self) -> None:
        """End the run where it stands: the adapter gave up on it (the caller cancelled the
        call, the client was closed, the sleep was interrupted).

        Rate-limit tokens reserved for an attempt not yet sent go back to the limiter; a
        request already sent keeps its cost, as it may have reached the server. `result` then
        raises `LocalProtocolError`. Does nothing once the run is finished.
        """
        if self._state is _State.DONE:
            return
        self._finish(LocalProtocolError("the call was abandoned before it finished"))

    def _drain(self, now: float) -> None:
        # The account's bucket at Kalshi is empty: so is the local one, for every caller.
        limiter = self._core.rate_limiter
        if limiter is not None:
            limiter.drain(self._priced_as, now)
            if self._trace:
                bucket = limiter.bucket_of(self._priced_as).value
                self._add_line(
                    DEBUG,
                    f"HTTP 429: the client-side {bucket} bucket is emptied too",
                    {"kalshi_attempt": self.attempts},
                )

    def _expect_sent(self) -> None:
        if self._state is not _State.SENT:
            raise LocalProtocolError("no request is in flight; call next_step() first")

    def _after_failure(
        self,
        error: KalshiError,
        status: int | None,
        retry_after: float | None,
        now: float,
        *,
        sent: bool = True,
    ) -> None:
        policy = self._retry
        decision = policy.decide(
            method=self.call.method,
            attempt=self.attempts,
            status=status,
            retry_after=retry_after,
            started_at=self.started_at,
            now=now,
            rng=self._core._rng,
        )
        if decision.retry and not self.call.idempotent:
            # The table has the last word: an operation it marks not idempotent is never resent.
            decision = RetryDecision(
                False, 0.0, f"{self.call.operation.operation_id} is never retried"
            )
        if not decision.retry:
            # Say why the error is final when the SDK could have tried again: the attempts or
            # the total timeout ran out; or no answer came to a request it never resends.
            if self.call.method in policy.retry_methods:
                if status is None or status in policy.retry_statuses:
                    error.add_note(f"not retried: {decision.reason}")
            elif not sent:
                error.add_note(
                    f"not resent ({decision.reason}): no connection was made, so the request "
                    "never reached the server"
                )
            elif status is None:
                error.add_note(
                    f"not resent ({decision.reason}): the request may have reached the server, "
                    "so check before sending it again (an order: look for its client_order_id)"
                )
            self._finish(error)
            return
        self._add_line(
            INFO,
            f"{decision.reason} ({type(error).__name__}: {error})",
            {"kalshi_attempt": self.attempts, "kalshi_wait": decision.delay},
        )
        self._state = _State.WAITING
        self._wake_at = now + decision.delay
        self._reserved = self._claimed = False
        self._error = error  # kept as the cause if the total timeout ends the run

    def _log_attempt(
        self, now: float, status: int | None, outcome: str, request_id: str | None
    ) -> None:
        assert self._sent is not None
        request, sent_at = self._sent
        elapsed = now - sent_at
        text = f"{request.method} {request.target} -> {outcome} in {elapsed * 1000:.1f} ms"
        text += f", attempt {self.attempts}"
        if request_id is not None:
            text += f" [request id {request_id}]"
        self._add_line(
            DEBUG,
            text,
            {
                "kalshi_attempt": self.attempts,
                "kalshi_method": request.method,
                "kalshi_target": request.target,
                "kalshi_status": status,
                "kalshi_elapsed": elapsed,
                "kalshi_request_id": request_id,
            },
        )

    def _add_line(self, level: int, text: str, fields: dict[str, object]) -> None:
        operation_id = self.call.operation.operation_id
        fields["kalshi_operation"] = operation_id
        self.log.append(LogLine(level, f"{operation_id}: {text}", fields))

    def _give_back(self) -> None:
        # Tokens taken for an attempt that will not be sent go back to their limiter, where
        # that is safe (`Reservation.give_back`).
        held, paced = self._held, self._paced
        self._held = self._paced = None
        if held is not None:
            held.give_back()
        if paced is not None:
            paced.give_back()

    def _finish(self, error: KalshiError) -> None:
        self._give_back()  # the run ends before the attempt it reserved for was sent
        self._error = error
        self._state = _State.DONE

    def _fail_timeout(self, why: str | None = None) -> Finished:
        total = self._retry.total_timeout
        text = f"{self.call.operation.operation_id}: total_timeout of {total:g}s reached"
        text += f" after {self.attempts} attempt(s)"
        if why:
            text += f"; {why}"
        if self._error is not None:
            text += f"; last error: {self._error}"
        error = CallTimeout(text)
        error.__cause__ = self._error
        self._finish(error)
        return Finished()


#: How far this machine's clock may be ahead of a server's ``Date``, and behind it, before a
#: 401's note blames the clock. A ``Date`` is behind the time it was sent by up to a second (it
#: has whole seconds), by as much again on servers that make it once a second, and the answer
#: took some time to arrive: so the clock's lead is allowed more. A ``Date`` is never ahead of
#: the time it was sent, but the machine's clock may be read late.
_CLOCK_AHEAD_SLACK_MS = 3_000
_CLOCK_BEHIND_SLACK_MS = 2_000


def _unauthorized_note(config: RestConfig, response: HttpResponse, wall_ms: int) -> str:
    # What to check when the API refused a signed request. The server's Date header, when it
    # sent one, says whether this machine's clock is the cause: the signature carries its time.
    assert config.credentials is not None
    note = (
        f"the request was signed with key id {config.credentials.key_id!r} for "
        f"{config.base_url.origin}: check that the key id and the private key belong together and "
        "to this environment (demo and production keys are apart)"
    )
    server_ms = parse_http_date_ms(response.header("date"))
    if server_ms is None:
        return f"{note}, and that this machine's clock is right (the signature carries its time)"
    skew_ms = wall_ms - server_ms
    if -_CLOCK_BEHIND_SLACK_MS <= skew_ms <= _CLOCK_AHEAD_SLACK_MS:
        return f"{note}; this machine's clock agrees with the server's Date header"
    way = "ahead of" if skew_ms > 0 else "behind"
    return (
        f"{note}; this machine's clock is {abs(skew_ms) / 1000:.0f} s {way} the server's (its "
        "Date header), and the signature carries that time: set the clock right (NTP)"
    )
