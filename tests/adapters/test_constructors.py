"""The four client classes spell out every constructor argument, and refuse bad ones at once.

Each adapter lists the arguments every client takes (those of the core's client base) in its
own signature, so `help()`, IDEs and type checkers show them, and a misspelt one is reported
against the class the caller used. These tests keep the lists in step with the base.
"""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import httpx
import numpy as np
import pytest

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_proto.errors import ConfigurationError
from kalshi_proto.rest._async_base import AsyncClientBase
from kalshi_proto.rest._sync_base import ClientBase

CLASSES = [
    (kalshi_sync.KalshiClient, ClientBase),
    (kalshi_anyio.AsyncKalshiClient, AsyncClientBase),
    (kalshi_httpx.KalshiClient, ClientBase),
    (kalshi_httpx.AsyncKalshiClient, AsyncClientBase),
]
IDS = ["kalshi_sync", "kalshi_anyio", "httpx_sync", "httpx_async"]


def parameters(function: Any) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("cls", "base"), CLASSES, ids=IDS)
def test_every_argument_of_the_base_is_in_the_signature_with_its_default(
    cls: type, base: type
) -> None:
    common = parameters(vars(base)["__init__"])
    own = parameters(vars(cls)["__init__"])
    assert [p.name for p in own[: len(common)]] == [p.name for p in common]
    for mine, theirs in zip(own, common, strict=False):
        assert (mine.kind, mine.default, mine.annotation) == (
            theirs.kind,
            theirs.default,
            theirs.annotation,
        ), mine.name
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in own)


@pytest.mark.parametrize(("cls", "base"), CLASSES, ids=IDS)
def test_a_misspelt_argument_names_the_class_the_caller_used(cls: type, base: type) -> None:
    with pytest.raises(
        TypeError,
        # (Python 3.13 and later add a suggestion)
        match=rf"^{cls.__name__}.__init__\(\) got an unexpected keyword argument 'key_idd'"
        r"(\. Did you mean 'key_id'\?)?$",
    ):
        cls(key_idd="x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": -1}, r"^max_connections must be 0 \(no limit\) or more, got -1$"),
        (
            {"max_connections": 1.5},
            r"^max_connections must be an int \(0 for no limit\), got float$",
        ),
        ({"max_connections": True}, r"^max_connections must be an int"),
        (
            {"keepalive_expiry": "5"},
            r"^keepalive_expiry must be a positive number of seconds or None, got str$",
        ),
        (
            {"keepalive_expiry": 0},
            r"^keepalive_expiry must be a positive number of seconds or None, got 0$",
        ),
        ({"ssl_context": True}, r"^ssl_context must be an ssl.SSLContext or None, got bool$"),
        ({"timeout": None}, r"^timeout must be a number of seconds, got NoneType$"),
        ({"logger": "mylog"}, r"^logger must be a logging.Logger"),
    ],
)
@pytest.mark.parametrize("cls", [kalshi_sync.KalshiClient, kalshi_anyio.AsyncKalshiClient])
def test_bad_options_of_the_socket_clients(cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limits": 5}, r"^limits must be an httpx.Limits .*got int$"),
        ({"verify": "no"}, r"^verify must be True, False or an ssl.SSLContext .*got str$"),
        ({"retry": 3}, r"^retry must be a RetryPolicy"),
    ],
)
@pytest.mark.parametrize("cls", [kalshi_httpx.KalshiClient, kalshi_httpx.AsyncKalshiClient])
def test_bad_options_of_the_httpx_clients(cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cls(**kwargs)


def test_the_httpx_clients_refuse_the_other_flavours_pool_and_transport() -> None:
    # The blocking and async httpx objects are easy to mix up; each mix-up is refused at once,
    # naming what was given, instead of failing at the first call.
    async_pool = httpx.AsyncClient()  # (nothing to close: it has opened no connection)
    with httpx.Client() as pool:
        with pytest.raises(
            ConfigurationError, match=r"^http_client must be an httpx.Client, got httpx.AsyncCl"
        ):
            kalshi_httpx.KalshiClient(http_client=async_pool)  # type: ignore[arg-type]
        with pytest.raises(
            ConfigurationError, match=r"^http_client must be an httpx.AsyncClient, got httpx.Cl"
        ):
            kalshi_httpx.AsyncKalshiClient(http_client=pool)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigurationError,
        match=r"^transport must be an httpx.BaseTransport \(one with handle_request\), "
        r"got httpx.AsyncHTTPTransport$",
    ):
        kalshi_httpx.KalshiClient(transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(
        ConfigurationError,
        match=r"^transport must be an httpx.AsyncBaseTransport \(one with handle_async_request\), "
        r"got httpx.HTTPTransport$",
    ):
        kalshi_httpx.AsyncKalshiClient(transport=httpx.HTTPTransport())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"http2": "yes"}, r"^http2 must be True or False, got str$"),
        ({"http2": 1}, r"^http2 must be True or False, got int$"),
        ({"http_client": "pool"}, r"^http_client must be an httpx\.(Async)?Client, got str$"),
        ({"transport": object()}, r"^transport must be an httpx\.(Async)?BaseTr.*got object$"),
    ],
)
@pytest.mark.parametrize("cls", [kalshi_httpx.KalshiClient, kalshi_httpx.AsyncKalshiClient])
def test_wrong_kinds_of_httpx_options(cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cls(**kwargs)


def test_a_transport_of_both_flavours_is_taken_by_both() -> None:
    # httpx.MockTransport has handle_request and handle_async_request.
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    kalshi_httpx.KalshiClient(transport=transport).close()
    assert kalshi_httpx.AsyncKalshiClient(transport=transport) is not None


def test_good_options_are_taken() -> None:
    kalshi_sync.KalshiClient(
        max_connections=0, keepalive_expiry=None, ssl_context=ssl.create_default_context()
    ).close()
    kalshi_httpx.KalshiClient(limits=httpx.Limits(max_connections=2), verify=False).close()


def test_numeric_options_of_other_numeric_types_are_taken() -> None:
    # numpy's scalars are numbers: a config read with numpy or pandas must not be refused.
    options: dict[str, Any] = {
        "timeout": np.int64(10),
        "max_connections": np.int64(4),
        "keepalive_expiry": np.float32(2.5),
    }
    client = kalshi_sync.KalshiClient(**options)
    assert client.config.timeout == 10.0 and type(client.config.timeout) is float
    client.close()
