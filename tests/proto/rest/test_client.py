"""`kalshi_proto.rest.client`: configuration, signed requests and the `CallRun` state machine."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from kalshi_proto import __version__
from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import (
    ApiError,
    AuthRequiredError,
    CallTimeout,
    CertificateError,
    ConfigurationError,
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    NotFoundError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ServerError,
    TransportError,
)
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse, build_call
from kalshi_proto.rest.client import (
    USER_AGENT,
    CallOptions,
    CallRun,
    Claim,
    Finished,
    RestConfig,
    RestCore,
    SendRequest,
    Sleep,
)
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import operation
from kalshi_proto.rest.ratelimit import DEFAULT_COST, Bucket, RateLimiter
from kalshi_proto.rest.retry import MAX_SECONDS, RetryPolicy
from tests.helpers.clock import FakeClock
from tests.proto.rest.conftest import KEY_ID

BASE = resolve_base_url()

STATUS_BODY = b'{"exchange_active": true, "trading_active": true}'
BASE_HEADERS = (("Accept", "application/json"), ("User-Agent", USER_AGENT))


def make_core(
    credentials: Credentials | None = None,
    *,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    limiter: RateLimiter | None = None,
    jitter: float = 0.5,
) -> RestCore:
    config = RestConfig(
        base_url=BASE,
        credentials=credentials,
        retry=retry if retry is not None else RetryPolicy(),
        timeout=timeout,
    )
    return RestCore(config, rng=lambda: jitter, rate_limiter=limiter)


def status_call() -> Call[m.ExchangeStatus]:
    return calls.get_exchange_status()


def order_call() -> Call[m.CreateOrderV2Response]:
    return calls.create_order_v2(
        m.CreateOrderV2Request(
            ticker="KXBTC-25",
            client_order_id="c-1",
            side="bid",
            count=Decimal("1"),
            price=Decimal("0.5"),
            time_in_force="good_till_canceled",
            self_trade_prevention_type="maker",
        )
    )


def ok(body: bytes = STATUS_BODY, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers=(("content-type", "application/json"),), body=body)


def failed(status: int, *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=b"")


def send(run: CallRun[Any], clock: FakeClock) -> SendRequest:
    step = run.next_step(clock.now, clock.wall_ms)
    assert isinstance(step, SendRequest), step
    return step


def claim(run: CallRun[Any], clock: FakeClock) -> Claim:
    step = run.next_step(clock.now, clock.wall_ms)
    assert isinstance(step, Claim), step
    return step


def claim_and_send(run: CallRun[Any], clock: FakeClock) -> SendRequest:
    """A rate-limited attempt whose tokens are there: the claim, then the request."""
    claim(run, clock)
    return send(run, clock)


def verify(credentials: Credentials, request: HttpRequest, message: bytes) -> None:
    """Check the three auth headers of ``request`` with the public key."""
    headers = dict(request.headers)
    assert headers["KALSHI-ACCESS-KEY"] == credentials.key_id
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"], validate=True)
    public = serialization.load_pem_public_key(credentials.signer.public_key_pem())
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, message)


@pytest.fixture(params=["rsa", "ed25519"])
def credentials(
    request: pytest.FixtureRequest,
    rsa_private_key: rsa.RSAPrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> Credentials:
    key = rsa_private_key if request.param == "rsa" else ed25519_private_key
    return Credentials(KEY_ID, Signer.from_private_key(key))


# ---- RestConfig ---------------------------------------------------------------------------


def test_rest_config_defaults() -> None:
    config = RestConfig(base_url=BASE)
    assert config.credentials is None
    assert config.retry == RetryPolicy()
    assert config.timeout == 30.0
    assert config.user_agent == USER_AGENT == f"kalshi-sansio/{__version__}"


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.nan])
def test_rest_config_refuses_a_timeout_that_is_not_positive(timeout: float) -> None:
    with pytest.raises(ConfigurationError, match=r"^timeout must be positive, got "):
        RestConfig(base_url=BASE, timeout=timeout)


@pytest.mark.parametrize(
    "agent",
    ["", "a\rb", "a\nb", "a\r\nX-Injected: 1", "bot\x00", "bot \u20ac", " bot", "bot\t", b"bot"],
)
def test_rest_config_refuses_a_user_agent_that_cannot_be_sent(agent: str) -> None:
    # Each of these would pass construction and then fail every call when it is encoded.
    with pytest.raises(
        ConfigurationError,
        match=r"^user_agent must be a non-empty single line of printable Latin-1 characters$",
    ):
        RestConfig(base_url=BASE, user_agent=agent)


@pytest.mark.parametrize("agent", ["a", "my-bot/1.0 (ops@example.com)", "caf\xe9 bot"])
def test_rest_config_takes_a_printable_latin1_user_agent(agent: str) -> None:
    assert RestConfig(base_url=BASE, user_agent=agent).user_agent == agent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": None}, r"^timeout must be a number of seconds, got NoneType$"),
        ({"timeout": "5"}, r"^timeout must be a number of seconds, got str$"),
        ({"timeout": True}, r"^timeout must be a number of seconds, got bool$"),
        ({"timeout": 1e10}, r"^timeout must be at most 1000000 seconds, got 10000000000.0$"),
        ({"retry": 3}, r"^retry must be a RetryPolicy \(for example RetryPolicy\(max_attempts=3\)"),
        ({"credentials": "key"}, r"^credentials must be a Credentials or None, got str$"),
    ],
)
def test_rest_config_refuses_options_of_the_wrong_type_or_size(
    kwargs: dict[str, object], message: str
) -> None:
    # Before, each of these was accepted and failed later, at the first call, with a TypeError,
    # an AttributeError or (a huge timeout on a blocking socket) an OverflowError.
    with pytest.raises(ConfigurationError, match=message):
        RestConfig(base_url=BASE, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("base_url", ["https://external-api.kalshi.com/trade-api/v2", None])
def test_rest_config_refuses_a_base_url_that_is_not_a_base_url(base_url: object) -> None:
    # A URL as text was accepted, and the first call failed with an AttributeError.
    with pytest.raises(ConfigurationError) as info:
        RestConfig(base_url=base_url)  # type: ignore[arg-type]
    assert str(info.value) == (
        "base_url must be a BaseUrl (kalshi_proto.environments.resolve_base_url builds one from "
        f"a URL, with the host policy), got {type(base_url).__name__}"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": "https://external-api.kalshi.com"}, "config must be a RestConfig, got str"),
        ({"rng": 0.5}, "rng must be a callable returning floats in [0, 1), got float"),
        ({"rate_limiter": "basic"}, "rate_limiter must be a RateLimiter or None, got str"),
    ],
)
def test_rest_core_refuses_arguments_of_the_wrong_kind(
    kwargs: dict[str, Any], message: str
) -> None:
    # Each was accepted and failed later, with an AttributeError or a TypeError.
    arguments: dict[str, Any] = {"config": RestConfig(base_url=BASE), "rng": lambda: 0.5}
    with pytest.raises(ConfigurationError) as info:
        RestCore(**{**arguments, **kwargs})
    assert str(info.value) == message


def test_rest_config_takes_the_longest_timeout() -> None:
    assert RestConfig(base_url=BASE, timeout=MAX_SECONDS).timeout == MAX_SECONDS


def test_rest_config_takes_a_timeout_below_one_second() -> None:
    assert RestConfig(base_url=BASE, timeout=0.5).timeout == 0.5


def test_rest_config_is_frozen() -> None:
    config = RestConfig(base_url=BASE)
    with pytest.raises(AttributeError):
        config.timeout = 1.0  # type: ignore[misc]


def test_steps_cannot_be_changed() -> None:
    request = make_core().build_request(status_call(), 0)
    for step, name in ((SendRequest(request, 1.0), "timeout"), (Sleep(0.5), "seconds")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(step, name, 2.0)


# ---- RestCore -----------------------------------------------------------------------------


def test_is_authenticated(rsa_credentials: Credentials) -> None:
    assert not make_core().is_authenticated
    assert make_core(rsa_credentials).is_authenticated


def test_private_call_without_credentials_is_refused_before_any_io(clock: FakeClock) -> None:
    with pytest.raises(AuthRequiredError) as info:
        make_core().start(calls.get_balance(), clock.now)
    assert str(info.value) == (
        "GetBalance (GET /portfolio/balance) needs credentials: pass key_id and private_key "
        "(or private_key_path), or use from_env()"
    )


@pytest.mark.parametrize("given", ["GetBalance", None, calls.get_balance])
def test_something_other_than_a_call_is_a_type_error(given: Any, clock: FakeClock) -> None:
    # A str, None or the builder itself (not called) raised AttributeError 'requires_auth'.
    with pytest.raises(TypeError) as info:
        make_core().start(given, clock.now)
    assert str(info.value) == (
        "expected a Call built by kalshi_proto.rest.generated.calls "
        f"(calls.get_markets(limit=100), say), got {type(given).__name__}"
    )


@pytest.mark.parametrize(
    ("now", "error", "message"),
    [
        (math.nan, ValueError, "now must be finite, got nan"),
        (math.inf, ValueError, "now must be finite, got inf"),
        ("0", TypeError, "now must be a number of seconds (time.monotonic()), got str"),
        (None, TypeError, "now must be a number of seconds (time.monotonic()), got NoneType"),
        (True, TypeError, "now must be a number of seconds (time.monotonic()), got bool"),
    ],
)
def test_a_clock_that_is_not_a_finite_number_is_refused(
    now: Any, error: type[Exception], message: str, clock: FakeClock
) -> None:
    # A NaN clock made every deadline unreachable: a call could wait and retry for ever.
    with pytest.raises(error) as info:
        make_core().start(status_call(), now)
    assert str(info.value) == message
    run = make_core().start(status_call(), clock.now)
    with pytest.raises(error) as info:
        run.next_step(now, clock.wall_ms)
    assert str(info.value) == message
    assert isinstance(run.next_step(clock.now, clock.wall_ms), SendRequest)


def test_public_call_needs_no_credentials(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    assert run.call == status_call()
    assert run.started_at == clock.now
    assert run.attempts == 0
    assert not run.done


def test_public_request_has_no_auth_headers(rsa_credentials: Credentials) -> None:
    call = calls.get_markets(limit=5, status="open")
    for core in (make_core(), make_core(rsa_credentials)):
        assert core.build_request(call, 1_767_225_600_000) == HttpRequest(
            method="GET",
            target="/trade-api/v2/markets?limit=5&status=open",
            headers=BASE_HEADERS,
            body=b"",
        )


def test_private_request_is_signed_over_the_path_without_query(
    credentials: Credentials, clock: FakeClock
) -> None:
    request = make_core(credentials).build_request(calls.get_balance(subaccount=1), clock.wall_ms)
    assert request.method == "GET"
    assert request.target == "/trade-api/v2/portfolio/balance?subaccount=1"
    assert request.body == b""
    names = [name for name, _ in request.headers]
    assert names == [
        "Accept",
        "User-Agent",
        "KALSHI-ACCESS-KEY",
        "KALSHI-ACCESS-TIMESTAMP",
        "KALSHI-ACCESS-SIGNATURE",
    ]
    assert dict(request.headers)["KALSHI-ACCESS-TIMESTAMP"] == "1767225600000"
    verify(credentials, request, b"1767225600000GET/trade-api/v2/portfolio/balance")


def test_body_request_is_json_and_signed(credentials: Credentials, clock: FakeClock) -> None:
    call = order_call()
    request = make_core(credentials).build_request(call, clock.wall_ms)
    assert request.method == "POST"
    assert request.target == "/trade-api/v2/portfolio/events/orders"
    assert request.body == call.body
    assert json.loads(request.body)["client_order_id"] == "c-1"
    assert request.headers[:3] == (*BASE_HEADERS, ("Content-Type", "application/json"))
    verify(credentials, request, b"1767225600000POST/trade-api/v2/portfolio/events/orders")


def test_build_request_without_credentials_sends_a_private_call_unsigned() -> None:
    request = make_core().build_request(calls.get_balance(), 0)
    assert request.headers == BASE_HEADERS


def test_the_user_agent_comes_from_the_config() -> None:
    config = RestConfig(base_url=BASE, user_agent="my-bot/2")
    request = RestCore(config, rng=lambda: 0.0).build_request(status_call(), 0)
    assert request.headers == (("Accept", "application/json"), ("User-Agent", "my-bot/2"))


# ---- CallRun: success and misuse ----------------------------------------------------------


def test_a_run_sends_once_and_returns_the_value(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    step = send(run, clock)
    assert step.request == make_core().build_request(status_call(), clock.wall_ms)
    assert step.timeout == 30.0
    assert run.attempts == 1
    clock.advance(0.25)
    run.receive_response(ok(), clock.now, clock.wall_ms)
    assert run.done
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    value = run.result()
    assert isinstance(value, m.ExchangeStatus)
    assert value.trading_active
    assert run.result() is value


def test_a_run_signs_each_attempt_with_the_wall_clock_of_that_attempt(
    rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(calls.get_balance(), clock.now)
    first = send(run, clock)
    assert dict(first.request.headers)["KALSHI-ACCESS-TIMESTAMP"] == str(clock.wall_ms)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    clock.advance(0.1875)
    second = send(run, clock)
    assert dict(second.request.headers)["KALSHI-ACCESS-TIMESTAMP"] == "1767225600188"
    verify(rsa_credentials, second.request, b"1767225600188GET/trade-api/v2/portfolio/balance")


def test_a_run_without_a_response_model_returns_none(
    rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(calls.delete_rfq("rfq-1"), clock.now)
    assert send(run, clock).request.method == "DELETE"
    run.receive_response(failed(204), clock.now, clock.wall_ms)
    assert run.done
    assert run.result() is None


def test_the_attempt_timeout_is_capped_by_what_is_left_of_the_total(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=10.0), timeout=30.0).start(
        status_call(), clock.now
    )
    assert send(run, clock).timeout == 10.0
    clock.advance(4.0)
    run.receive_failure(ReadError("reset"), clock.now)
    clock.advance(0.5)
    assert send(run, clock).timeout == 5.5


def test_without_a_total_timeout_the_attempt_timeout_is_the_config_timeout(
    clock: FakeClock,
) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=None), timeout=7.0).start(
        status_call(), clock.now
    )
    assert send(run, clock).timeout == 7.0
    clock.advance(1_000_000.0)
    run.receive_failure(ReadError("reset"), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)


def test_next_step_while_a_request_is_out_is_local_protocol_error(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    with pytest.raises(LocalProtocolError, match=r"^a request is in flight; report its"):
        run.next_step(clock.now, clock.wall_ms)
    assert run.attempts == 1
    run.receive_response(ok(), clock.now, clock.wall_ms)  # still waiting for that report
    assert run.done


@pytest.mark.parametrize("when", ["ready", "waiting", "done"])
def test_reports_without_a_request_out_are_local_protocol_errors(
    when: str, clock: FakeClock
) -> None:
    run = make_core().start(status_call(), clock.now)
    if when != "ready":
        send(run, clock)
        run.receive_response(failed(503 if when == "waiting" else 404), clock.now, clock.wall_ms)
    message = r"^no request is in flight; call next_step\(\) first$"
    with pytest.raises(LocalProtocolError, match=message):
        run.receive_response(ok(), clock.now, clock.wall_ms)
    with pytest.raises(LocalProtocolError, match=message):
        run.receive_failure(ReadError("reset"), clock.now)
    assert run.done is (when == "done")


@pytest.mark.parametrize("failure", [ValueError("a bug in the adapter"), "reset"])
def test_a_failure_that_is_not_a_transport_error_is_a_type_error(
    failure: object, clock: FakeClock
) -> None:
    # It was taken for a failed attempt, and retried: a bug in the code driving the run hidden.
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    with pytest.raises(TypeError) as info:
        run.receive_failure(failure, clock.now)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"error must be a TransportError (ConnectError, ReadError, ...), got "
        f"{type(failure).__name__}; any other exception is a bug to raise, not a failed "
        "attempt to retry"
    )
    assert run.attempts == 1 and not run.done
    run.receive_response(ok(), clock.now, clock.wall_ms)  # the request is still out
    assert run.done


def test_a_response_that_is_not_an_http_response_is_a_type_error(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    raw: Any = b"HTTP/1.1 200 OK\r\n\r\n"
    with pytest.raises(TypeError, match=r"^response must be an HttpResponse, got bytes$"):
        run.receive_response(raw, clock.now, clock.wall_ms)
    run.receive_response(ok(), clock.now, clock.wall_ms)
    assert run.done


def test_result_before_the_run_is_done_is_local_protocol_error(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    message = r"^the call is not finished; keep calling next_step\(\)$"
    with pytest.raises(LocalProtocolError, match=message):
        run.result()
    send(run, clock)
    with pytest.raises(LocalProtocolError, match=message):
        run.result()
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    with pytest.raises(LocalProtocolError, match=message):
        run.result()


# ---- CallRun: errors and retries ----------------------------------------------------------


def test_an_api_error_on_post_is_not_retried(
    rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(order_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    assert run.done
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(ServerError, match=r"^HTTP 503 from CreateOrderV2: service unavailable$"):
        run.result()
    assert run.attempts == 1


def test_a_status_that_is_not_retryable_ends_a_get(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(404, ("x-request-id", "r-1")), clock.now, clock.wall_ms)
    assert run.done
    with pytest.raises(NotFoundError) as info:
        run.result()
    assert info.value.request_id == "r-1"


def test_a_get_is_retried_on_503_after_the_exact_back_off(clock: FakeClock) -> None:
    # base_delay 0.25 * 2**0, times 0.5 + 0.5 * 0.5 of jitter: 0.1875 s.
    run = make_core(jitter=0.5).start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    assert not run.done
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.125)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.0625)
    clock.advance(0.0625)
    step = send(run, clock)
    assert step.request.target == "/trade-api/v2/exchange/status"
    assert run.attempts == 2


@pytest.mark.parametrize(("jitter", "delays"), [(0.0, [0.125, 0.25, 0.5]), (1.0, [0.25, 0.5, 1.0])])
def test_retries_back_off_exponentially_until_attempts_run_out(
    jitter: float, delays: list[float], clock: FakeClock
) -> None:
    run = make_core(jitter=jitter).start(status_call(), clock.now)
    errors: list[HttpResponse] = []
    slept: list[float] = []
    while True:
        step = run.next_step(clock.now, clock.wall_ms)
        if isinstance(step, SendRequest):
            errors.append(failed(503, ("x-request-id", f"r-{len(errors) + 1}")))
            run.receive_response(errors[-1], clock.now, clock.wall_ms)
        elif isinstance(step, Sleep):
            slept.append(step.seconds)
            clock.advance(step.seconds)
        else:
            break
    assert slept == delays
    assert run.attempts == 4
    with pytest.raises(ServerError) as info:
        run.result()
    assert info.value.request_id == "r-4"


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("2", 2.0), ("0.1", 0.1875), ("100", 30.0), ("Thu, 01 Jan 2026 00:00:03 GMT", 3.0)],
)
def test_retry_after_is_honoured(retry_after: str, delay: float, clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(429, ("retry-after", retry_after)), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(delay)
    clock.advance(delay)
    send(run, clock)
    assert run.attempts == 2


def test_retry_after_on_a_503_is_honoured_too(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(503, ("retry-after", "4")), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(4.0)


def test_a_transport_failure_is_retried_on_get(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_failure(ConnectError("refused"), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.1875)
    send(run, clock)
    run.receive_failure(ReadError("reset"), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.375)


@pytest.mark.parametrize("error", [ConnectError("refused"), ReadError("reset")])
def test_a_transport_failure_is_not_retried_on_post(
    error: TransportError, rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(order_call(), clock.now)
    send(run, clock)
    run.receive_failure(error, clock.now)
    assert run.done
    with pytest.raises(TransportError) as info:
        run.result()
    assert info.value is error


@pytest.mark.parametrize("first", ["503", "transport"])
def test_a_retried_get_that_succeeds_returns_the_value(first: str, clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    if first == "503":
        run.receive_response(failed(503), clock.now, clock.wall_ms)
    else:
        run.receive_failure(ReadError("reset"), clock.now)
    clock.advance(0.1875)
    send(run, clock)
    run.receive_response(ok(), clock.now, clock.wall_ms)
    assert run.done
    assert isinstance(run.result(), m.ExchangeStatus)


@pytest.mark.parametrize("status", [200, 201])
def test_a_2xx_body_that_does_not_parse_finishes_the_run(status: int, clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(ok(b"<html>maintenance</html>", status), clock.now, clock.wall_ms)
    assert run.done
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(RemoteProtocolError, match="body does not match ExchangeStatus"):
        run.result()
    assert run.attempts == 1


# ---- CallRun: why a final error is final --------------------------------------------------


def test_a_get_that_runs_out_of_attempts_says_so_in_a_note(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(max_attempts=2)).start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.1875)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    with pytest.raises(ServerError) as info:
        run.result()
    assert info.value.__notes__ == [
        "not retried: HTTP 503 on GET, attempt 2 of 2, no attempts left"
    ]


def test_a_get_stopped_by_the_total_timeout_keeps_its_error_and_says_why(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=1.0)).start(status_call(), clock.now)
    send(run, clock)
    clock.advance(0.9)
    run.receive_failure(ReadTimeout("reading the response timed out"), clock.now)
    with pytest.raises(ReadTimeout) as info:
        run.result()
    assert info.value.__notes__ == [
        "not retried: connection error on GET, attempt 1 of 4, a 0.19s back-off would reach "
        "the total timeout of 1s"
    ]


MAY_HAVE_ARRIVED = (
    "not resent (POST is never retried): the request may have reached the server, so check "
    "before sending it again (an order: look for its client_order_id)"
)
NEVER_LEFT = (
    "not resent (POST is never retried): no connection was made, so the request never "
    "reached the server"
)


@pytest.mark.parametrize(
    ("error", "note"),
    [
        (ReadTimeout("timed out"), MAY_HAVE_ARRIVED),
        (ReadError("reset"), MAY_HAVE_ARRIVED),
        (ConnectError("refused"), NEVER_LEFT),
        (ConnectTimeout("no free connection"), NEVER_LEFT),
    ],
)
def test_an_order_without_an_answer_is_not_resent_and_the_note_says_whether_it_left(
    error: TransportError, note: str, rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(order_call(), clock.now)
    send(run, clock)
    run.receive_failure(error, clock.now)
    with pytest.raises(TransportError) as info:
        run.result()
    assert info.value is error
    assert error.__notes__ == [note]


def test_a_certificate_that_fails_verification_ends_a_get_at_once(clock: FakeClock) -> None:
    # Every retry would fail the same way; the default policy would otherwise try 4 times.
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    error = CertificateError("TLS handshake with example.com:443 failed: expired")
    run.receive_failure(error, clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CertificateError) as info:
        run.result()
    assert info.value is error
    assert run.attempts == 1
    assert error.__notes__ == ["not retried: the server's certificate failed verification"]


# 2026-01-01 00:00:00 UTC is FakeClock's wall_ms; the Date headers are around it.
@pytest.mark.parametrize(
    ("date", "ending"),
    [
        (
            None,
            ", and that this machine's clock is right (the signature carries its time)",
        ),
        (
            "Thu, 01 Jan 2026 00:00:01 GMT",
            "; this machine's clock agrees with the server's Date header",
        ),
        (
            "Wed, 31 Dec 2025 23:59:57 GMT",  # a Date may lag by 3 s
            "; this machine's clock agrees with the server's Date header",
        ),
        (
            "Wed, 31 Dec 2025 23:59:56 GMT",
            "; this machine's clock is 4 s ahead of the server's (its Date header), and the "
            "signature carries that time: set the clock right (NTP)",
        ),
        (
            "Thu, 01 Jan 2026 00:00:02 GMT",
            "; this machine's clock agrees with the server's Date header",
        ),
        (
            "Thu, 01 Jan 2026 00:00:03 GMT",
            "; this machine's clock is 3 s behind the server's (its Date header), and the "
            "signature carries that time: set the clock right (NTP)",
        ),
        (
            "Wed, 31 Dec 2025 23:59:15 GMT",
            "; this machine's clock is 45 s ahead of the server's (its Date header), and the "
            "signature carries that time: set the clock right (NTP)",
        ),
        (
            "Thu, 01 Jan 2026 00:10:00 GMT",
            "; this machine's clock is 600 s behind the server's (its Date header), and the "
            "signature carries that time: set the clock right (NTP)",
        ),
        (
            "not a date",
            ", and that this machine's clock is right (the signature carries its time)",
        ),
    ],
)
def test_a_401_to_a_signed_request_says_what_to_check(
    date: str | None, ending: str, rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(status_call(), clock.now)
    send(run, clock)
    headers = () if date is None else (("date", date),)
    run.receive_response(failed(401, *headers), clock.now, clock.wall_ms)
    with pytest.raises(ApiError) as info:
        run.result()
    [note] = info.value.__notes__
    assert note.startswith(
        f"the request was signed with key id {rsa_credentials.key_id!r} for "
        "https://external-api.kalshi.com: check that the key id and the private key belong "
        "together and to this environment (demo and production keys are apart)"
    )
    assert note.endswith(ending)


def test_a_401_to_an_unsigned_request_has_no_note(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(401), clock.now, clock.wall_ms)
    with pytest.raises(ApiError) as info:
        run.result()
    assert not hasattr(info.value, "__notes__")


@pytest.mark.parametrize("status", [400, 403, 407, 451])
def test_a_proxy_that_refuses_the_tunnel_with_a_4xx_ends_a_get_at_once(
    status: int, clock: FakeClock
) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    error = ProxyError("the proxy refused the tunnel", status=status)
    run.receive_failure(error, clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(ProxyError) as info:
        run.result()
    assert info.value is error
    assert run.attempts == 1
    assert error.__notes__ == [f"not retried: the proxy would refuse again (HTTP {status})"]


@pytest.mark.parametrize("status", [None, 408, 429, 502, 503])
def test_a_proxy_that_could_not_open_the_tunnel_this_time_is_retried_as_a_connection_error(
    status: int | None, clock: FakeClock
) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_failure(ProxyError("no tunnel", status=status), clock.now)
    assert isinstance(run.next_step(clock.now, clock.wall_ms), Sleep)
    assert run.attempts == 1


@pytest.mark.parametrize(
    ("make_call", "status"), [(status_call, 404), (order_call, 400), (order_call, 503)]
)
def test_a_final_answer_the_sdk_would_never_retry_has_no_note(
    make_call: Any, status: int, rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(make_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(status), clock.now, clock.wall_ms)
    with pytest.raises(ApiError) as info:
        run.result()
    assert info.value.status == status
    assert not hasattr(info.value, "__notes__")


def test_an_operation_the_table_marks_not_idempotent_is_never_resent(clock: FakeClock) -> None:
    call = status_call()
    unsafe = dataclasses.replace(
        call, operation=dataclasses.replace(call.operation, idempotent=False)
    )
    assert unsafe.method == "GET"
    run = make_core().start(unsafe, clock.now)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    assert run.done and run.attempts == 1
    with pytest.raises(ServerError) as info:
        run.result()
    assert info.value.__notes__ == ["not retried: GetExchangeStatus is never retried"]


# ---- CallRun: total timeout ---------------------------------------------------------------


def test_the_total_timeout_ends_a_run_with_call_timeout_caused_by_the_last_error(
    clock: FakeClock,
) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=1.0)).start(status_call(), clock.now)
    send(run, clock)
    clock.advance(0.5)
    last = failed(503, ("x-request-id", "r-9"))
    run.receive_response(last, clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.5)  # the adapter's sleep overran to the deadline
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    assert run.done
    with pytest.raises(CallTimeout) as info:
        run.result()
    error = info.value
    assert isinstance(error, TimeoutError)
    assert str(error) == (
        "GetExchangeStatus: total_timeout of 1s reached after 1 attempt(s); last error: "
        "HTTP 503 from GetExchangeStatus: service unavailable [request id r-9]"
    )
    assert isinstance(error.__cause__, ServerError)
    assert error.__cause__.request_id == "r-9"


def test_the_deadline_is_exact(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=1.0)).start(status_call(), clock.now)
    send(run, clock)
    clock.advance(0.5)
    run.receive_failure(ReadError("reset"), clock.now)
    clock.advance(0.4375)  # 1/16 s before the deadline: one more attempt fits
    step = send(run, clock)
    assert step.timeout == 0.0625
    assert run.attempts == 2
    run.receive_failure(ReadError("again"), clock.now)
    # A 0.375 s back-off would pass the 1 s total: no retry, the error stands.
    assert run.done
    with pytest.raises(ReadError, match="again"):
        run.result()


def test_call_timeout_before_the_first_attempt_has_no_cause(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=2.0)).start(status_call(), clock.now)
    clock.advance(2.0)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CallTimeout) as info:
        run.result()
    assert str(info.value) == "GetExchangeStatus: total_timeout of 2s reached after 0 attempt(s)"
    assert info.value.__cause__ is None


def test_call_timeout_names_every_attempt(clock: FakeClock) -> None:
    run = make_core(retry=RetryPolicy(total_timeout=5.0, max_attempts=10)).start(
        status_call(), clock.now
    )
    for _ in range(3):
        send(run, clock)
        run.receive_failure(ReadError("reset"), clock.now)
        step = run.next_step(clock.now, clock.wall_ms)
        assert isinstance(step, Sleep)
        clock.advance(step.seconds)
    clock.advance(5.0)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CallTimeout, match=r"reached after 3 attempt\(s\); last error: reset$"):
        run.result()


# ---- CallRun: the rate limiter ------------------------------------------------------------


def limiter() -> RateLimiter:
    # GetExchangeStatus costs 10 Read tokens; 10 tokens refill in 0.5 s.
    return RateLimiter.from_limits(20, 10, 20, 10)


def test_a_rate_limit_wait_is_a_sleep_then_the_request_goes_out(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    assert core.rate_limiter is not None
    first = core.start(status_call(), clock.now)
    claim_and_send(first, clock)  # the full bucket covers the first call
    first.receive_response(ok(), clock.now, clock.wall_ms)

    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    assert read_balance(core, clock) == -10  # its turn is reserved; no connection is held
    assert run.attempts == 0
    clock.advance(0.25)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.25)
    clock.advance(0.25)
    assert run.next_step(clock.now, clock.wall_ms) == Claim(30.0)  # one attempt's timeout
    step = send(run, clock)  # on its turn: paced, it goes at once
    assert step.timeout == 30.0
    assert run.attempts == 1
    assert core.rate_limiter.bucket_of("GetExchangeStatus").value == "read"


def test_each_retry_claims_and_reserves_tokens_again(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    run = core.start(status_call(), clock.now)
    claim_and_send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.1875)
    # 0.1875 s refilled 3.75 tokens; the retry's 10 leave a debt of 6.25, paid in 0.3125 s.
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.3125)
    clock.advance(0.3125)
    claim_and_send(run, clock)
    assert run.attempts == 2


def test_a_rate_limit_wait_past_the_total_timeout_is_call_timeout(clock: FakeClock) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=0.25), limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CallTimeout) as info:
        run.result()
    assert str(info.value) == (
        "GetExchangeStatus: total_timeout of 0.25s reached after 0 attempt(s); "
        "the rate limiter asks for a 0.50s wait"
    )
    assert info.value.__cause__ is None


def test_a_rate_limit_wait_that_ends_at_the_total_timeout_is_call_timeout_at_once(
    clock: FakeClock,
) -> None:
    # Sleeping until the deadline would leave the attempt no time: the call ends now, and the
    # tokens it reserved go back.
    core = make_core(retry=RetryPolicy(total_timeout=0.5), limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)
    before = read_balance(core, clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CallTimeout) as info:
        run.result()
    assert str(info.value) == (
        "GetExchangeStatus: total_timeout of 0.5s reached after 0 attempt(s); "
        "the rate limiter asks for a 0.50s wait"
    )
    assert read_balance(core, clock) == before


def test_a_rate_limit_wait_that_ends_just_before_the_total_timeout_is_slept(
    clock: FakeClock,
) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=0.5 + 2**-20), limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    clock.advance(0.5)
    assert claim(run, clock) == Claim(2**-20)
    step = run.next_step(clock.now, clock.wall_ms)
    assert isinstance(step, SendRequest)
    assert step.timeout == 2**-20


def test_a_rate_limit_wait_without_a_total_timeout_is_never_refused(clock: FakeClock) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=None), limiter=limiter())
    steps = [
        core.start(status_call(), clock.now).next_step(clock.now, clock.wall_ms) for _ in range(4)
    ]
    assert steps == [Claim(30.0), Sleep(0.5), Sleep(1.0), Sleep(1.5)]


def read_balance(core: RestCore, clock: FakeClock) -> float:
    assert core.rate_limiter is not None
    return core.rate_limiter.bucket(Bucket.READ).available(clock.now)


def test_a_call_refused_for_its_rate_limit_wait_gives_its_tokens_back(clock: FakeClock) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=0.25), limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)  # empties the bucket
    for _ in range(5):
        refused = core.start(status_call(), clock.now)
        assert refused.next_step(clock.now, clock.wall_ms) == Finished()
    # Nothing was sent, so nothing is owed: had the refused calls kept their tokens, the
    # bucket would be 50 in debt and the next call refused too.
    assert read_balance(core, clock) == 0
    clock.advance(0.5)
    claim_and_send(core.start(status_call(), clock.now), clock)


def test_a_call_whose_deadline_passes_while_it_waits_gives_its_tokens_back(
    clock: FakeClock,
) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=0.55), limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    assert read_balance(core, clock) == -10
    clock.advance(0.6)  # slept past the deadline: the request is never sent
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    assert read_balance(core, clock) == 10  # refilled by 0.6 s, and the 10 given back, capped


def test_abandoning_a_waiting_call_gives_its_tokens_back(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    run.abandon()  # cancelled during its wait
    assert run.done
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(LocalProtocolError, match="the call was abandoned before it finished"):
        run.result()
    assert read_balance(core, clock) == 0
    run.abandon()  # once finished, nothing more happens
    assert read_balance(core, clock) == 0


def test_abandoning_a_call_whose_request_is_out_keeps_its_cost(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    run = core.start(status_call(), clock.now)
    claim_and_send(run, clock)
    run.abandon()  # cancelled while waiting for the answer: the request may have arrived
    assert read_balance(core, clock) == 0
    finished = core.start(status_call(), clock.now)
    clock.advance(0.5)
    claim_and_send(finished, clock)
    finished.receive_response(ok(), clock.now, clock.wall_ms)
    finished.abandon()
    assert finished.result().trading_active is True


def test_the_tokens_go_back_to_the_limiter_they_came_from(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    first = core.rate_limiter
    assert first is not None
    claim_and_send(core.start(status_call(), clock.now), clock)
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    core.rate_limiter = replacement = limiter()  # as configure_rate_limit() does
    run.abandon()
    assert first.bucket(Bucket.READ).available(clock.now) == 0
    assert replacement.bucket(Bucket.READ).available(clock.now) == 10


def test_a_429_under_the_rate_limiter_backs_off_and_reserves_again(clock: FakeClock) -> None:
    run = make_core(limiter=limiter()).start(status_call(), clock.now)
    claim_and_send(run, clock)
    resp = HttpResponse(status=429, headers=(), body=b'{"error": "too many requests"}')
    run.receive_response(resp, clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.5)  # the bucket is full again
    claim_and_send(run, clock)
    run.receive_response(resp, clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.375)
    assert not run.done


# ---- per-call options ------------------------------------------------------------------------


def test_options_override_the_attempt_timeout_and_retry_policy(clock: FakeClock) -> None:
    core = make_core(retry=RetryPolicy(max_attempts=4), timeout=30.0)
    plain = core.start(status_call(), clock.now)
    assert send(plain, clock).timeout == 30.0
    quick = core.start(status_call(), clock.now, options=CallOptions(timeout=2))
    assert send(quick, clock).timeout == 2.0
    # The client's policy would retry a 503 on a GET; the call's own does not.
    once = core.start(
        status_call(), clock.now, options=CallOptions(retry=RetryPolicy.disabled())
    )
    send(once, clock)
    once.receive_response(failed(503), clock.now, clock.wall_ms)
    assert once.next_step(clock.now, clock.wall_ms) == Finished()
    assert once.attempts == 1
    plain.receive_response(failed(503), clock.now, clock.wall_ms)
    assert isinstance(plain.next_step(clock.now, clock.wall_ms), Sleep)


def test_an_options_total_timeout_bounds_the_call_and_caps_the_attempt(clock: FakeClock) -> None:
    core = make_core(timeout=30.0)
    options = CallOptions(retry=RetryPolicy(total_timeout=1.5))
    run = core.start(status_call(), clock.now, options=options)
    assert send(run, clock).timeout == 1.5


def test_options_with_nothing_set_change_nothing(clock: FakeClock) -> None:
    core = make_core(timeout=12.0)
    run = core.start(status_call(), clock.now, options=CallOptions())
    assert send(run, clock).timeout == 12.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be positive, got 0.0"),
        ({"timeout": float("inf")}, "timeout must be finite"),
        ({"timeout": "2"}, "timeout must be a number of seconds, got str"),
        ({"timeout": True}, "timeout must be a number of seconds, got bool"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
    ],
)
def test_bad_options_are_refused_as_the_client_would(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        CallOptions(**kwargs)  # type: ignore[arg-type]
    config_kwargs = {"base_url": BASE, **kwargs}
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        RestConfig(**config_kwargs)  # type: ignore[arg-type]


def test_options_stack_field_by_field() -> None:
    disabled = RetryPolicy.disabled()
    lower = CallOptions(retry=disabled, timeout=5)
    assert CallOptions(timeout=1).over(lower) == CallOptions(retry=disabled, timeout=1)
    assert CallOptions().over(lower) == lower
    assert lower.over(None) is lower


def test_options_of_another_type_are_a_type_error(clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="options must be a CallOptions or None, got dict"):
        options: Any = {"timeout": 1}
        make_core().start(status_call(), clock.now, options=options)


def hand_built_call() -> Call[m.ExchangeStatus]:
    # An endpoint newer than the SDK's spec, described by hand (as `build_call` allows).
    op = dataclasses.replace(
        operation("GetExchangeStatus"), operation_id="GetExchangeStatusV3", path="/v3/status"
    )
    return build_call(op, {})


def test_a_hand_built_operation_is_priced_at_the_default_from_the_read_bucket(
    clock: FakeClock,
) -> None:
    # The limiter refuses an id outside the API's table (a misspelling), but a call of an
    # operation built by hand costs the table's default, from the Read bucket.
    core = make_core(limiter=limiter())
    assert core.rate_limiter is not None
    with pytest.raises(LocalProtocolError, match="no operation has the operationId"):
        core.rate_limiter.cost_of("GetExchangeStatusV3")
    full = read_balance(core, clock)
    first = core.start(hand_built_call(), clock.now)
    claim_and_send(first, clock)
    assert read_balance(core, clock) == full - DEFAULT_COST
    clock.advance(0.5)  # refilled
    assert read_balance(core, clock) == full
    first.receive_response(failed(429), clock.now, clock.wall_ms)
    assert read_balance(core, clock) == 0  # a 429 empties the bucket the call spends from
    assert core.rate_limiter.bucket(Bucket.WRITE).available(clock.now) > 0
    run = core.start(hand_built_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
