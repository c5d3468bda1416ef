"""`kalshi_proto.errors`: the map from HTTP status to `ApiError` class, and errors that pickle."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from kalshi_proto import errors
from kalshi_proto.errors import (
    ApiError,
    CertificateError,
    ConnectError,
    KalshiError,
    ProxyError,
    RateLimitError,
    ReadTimeout,
    RemoteProtocolError,
    ServerError,
    api_error_for_status,
)


@pytest.mark.parametrize(
    ("status", "cls"), [(418, ApiError), (499, ApiError), (500, ServerError), (599, ServerError)]
)
def test_server_error_starts_at_500(status: int, cls: type[ApiError]) -> None:
    assert api_error_for_status(status) is cls


def _every_error() -> list[KalshiError]:
    # One of each class errors exports, with every attribute it has set.
    made: list[KalshiError] = []
    for name in errors.__all__:
        cls: object = getattr(errors, name)
        if not isinstance(cls, type) or not issubclass(cls, KalshiError):
            continue
        error: KalshiError
        if cls is RateLimitError:
            error = cls(429, "slow down", retry_after=1.5, code="too_many", request_id="r-1")
        elif issubclass(cls, ApiError):
            error = cls(
                404,
                "no such market",
                code="not_found",
                details="KX-NONE",
                request_id="r-2",
                operation_id="GetMarket",
            )
        elif cls is RemoteProtocolError:
            error = cls("bad chunk size", hint=1002)
        elif cls is errors.ResponseTooLargeError:
            error = cls("the response body exceeds 10 bytes", limit=10)
        elif cls is errors.ReadError:
            error = cls("bad response: too large", final="it would be again")
        else:
            error = cls(f"a {name}")
        error.add_note("attempt 1 of 3")
        made.append(error)
    return made


def _pickled(protocol: int) -> Callable[[KalshiError], object]:
    def round_trip(error: KalshiError) -> object:
        return pickle.loads(pickle.dumps(error, protocol=protocol))

    return round_trip


COPIES: dict[str, Callable[[KalshiError], object]] = {
    **{f"pickle-{p}": _pickled(p) for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("error", _every_error(), ids=lambda error: type(error).__name__)
def test_every_error_pickles_and_copies_with_its_attributes(error: KalshiError, how: str) -> None:
    # ApiError and its subclasses raised TypeError on unpickling and copy.copy (their __init__
    # takes the status first), so one could not cross a ProcessPoolExecutor.
    twin = COPIES[how](error)
    assert type(twin) is type(error)
    assert twin is not error
    assert twin.args == error.args
    assert str(twin) == str(error)
    assert vars(twin) == vars(error)
    assert twin.__notes__ == ["attempt 1 of 3"]


def test_a_pickled_api_error_keeps_its_fields() -> None:
    error = RateLimitError(429, "slow down", retry_after=2.0, operation_id="GetMarkets")
    twin = pickle.loads(pickle.dumps(error))
    assert isinstance(twin, RateLimitError)
    assert (twin.status, twin.message, twin.retry_after, twin.operation_id) == (
        429,
        "slow down",
        2.0,
        "GetMarkets",
    )
    assert str(twin) == "HTTP 429 from GetMarkets: slow down"


def test_final_reason_says_which_transport_failures_would_repeat() -> None:
    assert ConnectError("refused").final_reason is None
    assert ReadTimeout("slow").final_reason is None
    assert CertificateError("expired").final_reason == (
        "the server's certificate failed verification"
    )
    assert ProxyError("no", status=407).final_reason == "the proxy would refuse again (HTTP 407)"
    for status in (None, 408, 429, 502):
        assert ProxyError("not now", status=status).final_reason is None
