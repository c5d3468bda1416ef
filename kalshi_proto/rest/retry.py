"""When to retry a failed REST attempt, and how long to wait first.

The decision is a pure function: the adapter reports what happened to one attempt, the policy
answers with a `RetryDecision`, and the adapter sleeps for ``decision.delay`` before it sends the
same request again. Nothing here reads a clock or a random source; ``now`` is the adapter's
monotonic clock and ``rng`` is an injected callable returning floats in ``[0, 1)``.

The rules, checked in this order:

1. Only the methods in ``retry_methods`` (``GET``, ``HEAD`` and ``OPTIONS``, or fewer) are
   retried. ``POST``, ``PUT``, ``DELETE`` and ``PATCH`` are never retried, not even after a
   connection error, and a policy that lists one is refused: the first request may have reached
   the exchange, and sending an order or a cancel twice is worse than reporting the failure
   (DESIGN.md, "Retries").
2. A response whose status is not in ``retry_statuses`` (408, 425, 429, 500, 502, 503 and 504 by
   default) is final. A connection or transport error, reported as ``status=None``, is
   retryable.
3. ``max_attempts`` counts every attempt, the first included; when the attempt that just failed
   is the last one, there is no retry.
4. The back-off before attempt ``n + 1`` is ``min(retry_max_delay, base_delay * 2**(n - 1))``
   multiplied by ``0.5 + 0.5 * rng()`` ("equal jitter": at least half the exponential delay, at
   most all of it). Kalshi answers throttled requests with HTTP 429 and sends neither
   ``Retry-After`` nor ``X-RateLimit-*`` headers, so the client backs off exponentially
   (REST-NOTES.md section 3, from the Kalshi docs page getting_started/rate_limits). When a
   ``Retry-After`` value does arrive it is honoured, capped at ``retry_after_cap``: the delay is
   the larger of the back-off and the capped ``Retry-After``.
5. With ``total_timeout`` set, the whole call (attempts and waits) ends by
   ``started_at + total_timeout``. A retry whose wait would end at or after that deadline is not
   made: it would leave the attempt no time.

`parse_retry_after` turns a ``Retry-After`` header (RFC 9110 section 10.2.3: delta-seconds or an
HTTP-date) into seconds, given the current wall-clock time in milliseconds.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from kalshi_proto.errors import ConfigurationError, LocalProtocolError

__all__ = [
    "MAX_SECONDS",
    "RETRYABLE_METHODS",
    "RetryDecision",
    "RetryPolicy",
    "check_number",
    "parse_http_date_ms",
    "parse_retry_after",
]

_DEFAULT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

#: The methods a `RetryPolicy` may retry, all of them by default; ``retry_methods`` can narrow
#: them but never add POST, PUT, DELETE or PATCH.
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# RFC 9110 delta-seconds is 1*DIGIT; a decimal fraction is accepted as well. ASCII digits only
# (str.isdigit would also accept other scripts' digits).
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")

#: The longest timeout, delay or cap the clients accept, in seconds (about 11.6 days). Anything
#: longer is no bound at all in practice, and overflows what blocking sockets and
#: ``time.sleep`` can wait on some platforms.
MAX_SECONDS = 1_000_000.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def check_number(name: str, value: object, kind: type[int] | type[float] = float) -> None:
    """Raise `ConfigurationError` unless ``value`` is a number of ``kind``: for ``int`` any
    `numbers.Integral` (numpy's integers too), for ``float`` any `numbers.Real`; a bool never
    counts. The caller stores ``int(value)`` or ``float(value)``."""
    allowed = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, allowed):
        what = "an int" if kind is int else "a number of seconds"
        raise ConfigurationError(f"{name} must be {what}, got {type(value).__name__}")


def _as_frozenset(name: str, value: object, what: str) -> frozenset[object]:
    # A collection of items (a set, list, tuple, range...) becomes a frozenset, so the policy
    # stays hashable; a lone str, bytes or a mapping is refused rather than read item by item.
    if isinstance(value, Collection) and not isinstance(value, str | bytes | bytearray | Mapping):
        try:
            return frozenset(value)
        except TypeError:  # an unhashable item
            raise ConfigurationError(
                f"{name} must hold {what}, got {_listed(list(value))}"
            ) from None
    raise ConfigurationError(
        f"{name} must be a set of {what}, got {type(value).__name__} {value!r}"
    )


def _listed(items: list[object]) -> str:
    # The offending items, in a stable order, for an error message.
    return "[" + ", ".join(sorted(repr(item) for item in items)) + "]"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    Attributes:
        retry: whether to send the request again.
        delay: seconds to wait before the next attempt; ``0.0`` when ``retry`` is false.
        reason: a one-line explanation, for logs and for the error raised when giving up.
    """

    retry: bool
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failed REST attempts to retry, and the back-off between attempts.

    Attributes:
        max_attempts: total attempts, the first included; ``1`` turns retries off.
        base_delay: seconds of back-off after the first failed attempt, before jitter.
        retry_max_delay: cap on any back-off delay, in seconds.
        retry_after_cap: cap on an honoured ``Retry-After``, in seconds.
        total_timeout: seconds the whole call may take, retries and waits included, or ``None``
            for no bound.
        retry_statuses: HTTP statuses that may be retried (a set, list, tuple or range of ints;
            kept as a frozenset).
        retry_methods: upper-case HTTP methods that may be retried: some of
            `RETRYABLE_METHODS` (a set, list or tuple of str; kept as a frozenset).

    Raises:
        ConfigurationError: on construction, when a field is of the wrong type or out of
            range (``max_attempts`` below 1, a delay or cap that is negative, NaN or above
            `MAX_SECONDS`, ``total_timeout`` not above 0,
            statuses or methods that are not a collection (a lone ``"GET"`` is refused),
            a status that is not an int or is outside 100-599, a method that is not a str, is
            empty, not upper-case, or not one of GET, HEAD and OPTIONS).
    """

    max_attempts: int = 4
    base_delay: float = 0.25
    retry_max_delay: float = 8.0
    retry_after_cap: float = 30.0
    total_timeout: float | None = 60.0
    retry_statuses: frozenset[int] = _DEFAULT_STATUSES
    retry_methods: frozenset[str] = RETRYABLE_METHODS

    def __post_init__(self) -> None:
        check_number("max_attempts", self.max_attempts, int)
        object.__setattr__(self, "max_attempts", int(self.max_attempts))
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be at least 1 (1 disables retries), got {self.max_attempts}"
            )
        for name, value in (
            ("base_delay", self.base_delay),
            ("retry_max_delay", self.retry_max_delay),
            ("retry_after_cap", self.retry_after_cap),
        ):
            check_number(name, value)
            value = float(value)
            object.__setattr__(self, name, value)
            # The chained comparison also rejects NaN and infinity.
            if not 0 <= value <= MAX_SECONDS:
                raise ConfigurationError(
                    f"{name} must be a finite number >= 0 and at most {MAX_SECONDS:.0f} "
                    f"seconds, got {value!r}"
                )
        if self.total_timeout is not None:
            check_number("total_timeout", self.total_timeout)
            object.__setattr__(self, "total_timeout", float(self.total_timeout))
        if self.total_timeout is not None and not self.total_timeout > 0:
            raise ConfigurationError(
                f"total_timeout must be None or > 0 seconds, got {self.total_timeout!r}"
            )
        statuses = _as_frozenset("retry_statuses", self.retry_statuses, "HTTP statuses")
        ints: set[int] = set()
        not_ints: list[object] = []
        for status in statuses:
            if isinstance(status, numbers.Integral) and not isinstance(status, bool):
                ints.add(int(status))  # an HTTPStatus or a numpy integer becomes a plain int
            else:
                not_ints.append(status)
        if not_ints:
            raise ConfigurationError(
                f"retry_statuses must be HTTP statuses (ints), got {_listed(not_ints)}"
            )
        object.__setattr__(self, "retry_statuses", frozenset(ints))
        bad_statuses = sorted(s for s in self.retry_statuses if not 100 <= s <= 599)
        if bad_statuses:
            raise ConfigurationError(
                f"retry_statuses must be HTTP statuses from 100 to 599, got {bad_statuses}"
            )
        methods = _as_frozenset("retry_methods", self.retry_methods, "method names")
        not_strs = [m for m in methods if not isinstance(m, str)]
        if not_strs:
            raise ConfigurationError(
                f"retry_methods must be method names (str), got {_listed(not_strs)}"
            )
        object.__setattr__(self, "retry_methods", methods)
        bad_methods = sorted(m for m in self.retry_methods if m != m.upper() or not m)
        if bad_methods:
            raise ConfigurationError(
                f"retry_methods must be non-empty upper-case method names, got {bad_methods}"
            )
        unsafe = sorted(self.retry_methods - RETRYABLE_METHODS)
        if unsafe:
            raise ConfigurationError(
                f"retry_methods may hold only GET, HEAD and OPTIONS, got {unsafe}: a request "
                "that changes something (an order, an amend, a cancel) is never resent, since "
                "the first one may have reached the exchange"
            )

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries (``max_attempts=1``); other fields keep their defaults.

        Returns:
            The policy.
        """
        return cls(max_attempts=1)

    def deadline(self, started_at: float) -> float | None:
        """The clock time by which the whole call must end.

        Args:
            started_at: the adapter's clock when the first attempt started.

        Returns:
            ``started_at + total_timeout``, or ``None`` when ``total_timeout`` is ``None``.
        """
        if self.total_timeout is None:
            return None
        return started_at + self.total_timeout

    def decide(
        self,
        *,
        method: str,
        attempt: int,
        status: int | None,
        retry_after: float | None,
        started_at: float,
        now: float,
        rng: Callable[[], float],
    ) -> RetryDecision:
        """Decide whether to retry after an attempt failed, and how long to wait first.

        If the answer is to retry, sleep ``delay`` seconds, then send attempt ``attempt + 1``.
        Otherwise raise the error of the last attempt, adding ``reason`` if you like. ``rng`` is
        called exactly once when the decision reaches the back-off step (rules 4 and 5 of the
        module docstring) and not at all otherwise, so a seeded generator gives repeatable runs.

        Args:
            method: the HTTP method of the request (case does not matter).
            attempt: the 1-based number of the attempt that just failed.
            status: the HTTP status of the response, or ``None`` when the attempt ended in a
                connection or transport error without a response.
            retry_after: the server's ``Retry-After`` in seconds (see `parse_retry_after`), or
                ``None``. Values that are not positive are ignored.
            started_at: the adapter's clock when the first attempt started.
            now: the adapter's clock now.
            rng: returns a float in ``[0, 1)``, e.g. ``random.Random(seed).random``.

        Returns:
            The decision.

        Raises:
            LocalProtocolError: ``attempt`` is below 1, or ``rng`` returned a value outside
                ``[0, 1]``.
        """
        if attempt < 1:
            raise LocalProtocolError(f"attempt numbers start at 1, got {attempt}")
        verb = method.upper()
        if verb not in self.retry_methods:
            return RetryDecision(False, 0.0, f"{verb} is never retried")
        failure = "connection error" if status is None else f"HTTP {status}"
        if status is not None and status not in self.retry_statuses:
            return RetryDecision(False, 0.0, f"{failure} on {verb} is not retried")
        where = f"{failure} on {verb}, attempt {attempt} of {self.max_attempts}"
        if attempt >= self.max_attempts:
            return RetryDecision(False, 0.0, f"{where}, no attempts left")

        jitter = rng()
        # (1.0 itself is let through: a generator of [0, 1] floats is harmless here.)
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise LocalProtocolError(f"rng must return a float in [0, 1), got {jitter!r}")
        try:
            # base_delay * 2 ** (attempt - 1), exact for any base (even one so small that the
            # power of two alone would overflow); a product past the largest float is infinite.
            exponential = math.ldexp(self.base_delay, attempt - 1)
        except OverflowError:
            exponential = math.inf
        delay = min(self.retry_max_delay, exponential) * (0.5 + 0.5 * jitter)
        note = ""
        if retry_after is not None and retry_after > 0:
            honoured = min(retry_after, self.retry_after_cap)
            delay = max(delay, honoured)
            note = f" (Retry-After {retry_after:g}s"
            note += f", capped at {self.retry_after_cap:g}s)" if honoured < retry_after else ")"

        deadline = self.deadline(started_at)
        if deadline is not None and now + delay >= deadline:
            return RetryDecision(
                False,
                0.0,
                f"{where}, a {delay:.2f}s back-off{note} would reach the total timeout of "
                f"{self.total_timeout:g}s",
            )
        return RetryDecision(True, delay, f"{where}, backing off {delay:.2f}s{note}")


def parse_http_date_ms(value: str | None) -> int | None:
    """Turn an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, RFC 9110 section 5.6.7), as in
    ``Date`` and ``Retry-After``, into Unix milliseconds. A date without a time zone is read as
    UTC, as HTTP-dates always are.

    Returns:
        The time, or ``None`` when the value is absent or cannot be read (this function never
        raises).
    """
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (ValueError, TypeError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Whole milliseconds keep the arithmetic exact; HTTP-dates have whole seconds anyway.
    return (when - _EPOCH) // _ONE_MS


def parse_retry_after(value: str | None, *, wall_ms: int) -> float | None:
    """Turn a ``Retry-After`` header value into seconds to wait.

    Accepts delta-seconds (``"120"``, and decimals such as ``"1.5"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, RFC 9110 section 10.2.3). A date without a time zone
    is read as UTC, as HTTP-dates always are. A date in the past gives ``0.0``.

    Args:
        value: the header value, or ``None`` when the header is absent.
        wall_ms: the current Unix time in milliseconds, used to turn a date into a delay.

    Returns:
        Non-negative seconds, or ``None`` when the header is absent or cannot be read (this
        function never raises).
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        # A long enough digit string parses as infinity; treat it as unreadable.
        return seconds if math.isfinite(seconds) else None
    target_ms = parse_http_date_ms(text)
    if target_ms is None:
        return None
    return max(0, target_ms - wall_ms) / 1000
