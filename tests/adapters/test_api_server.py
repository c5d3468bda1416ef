"""Checks of the test server itself (``server.py``), so the client suite can trust it.

A server that accepted any signature, or routed ``/markets/trades`` to ``GetMarket``, would let
the client tests pass for the wrong reasons. These tests need no client flavour and no loop.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time

import pytest

from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.rest.operation_table import Operation, operations
from tests.adapters.server import (
    PREFIX,
    ApiServer,
    AuthFailure,
    Fault,
    KeyPair,
    PublicKey,
    response_body,
    route,
    verify_signature,
)

NOW_MS = 1_767_225_600_000
PATH = f"{PREFIX}/portfolio/orders"


@pytest.fixture(scope="module")
def keys() -> tuple[KeyPair, KeyPair]:
    return KeyPair.rsa("rsa-key"), KeyPair.ed25519("ed-key")


def signed_headers(key: KeyPair, method: str, path: str, wall_ms: int) -> dict[str, str]:
    credentials = Credentials(key.key_id, Signer.from_pem(key.pem))
    return {name.lower(): value for name, value in credentials.headers(method, path, wall_ms)}


def registry(*pairs: KeyPair) -> dict[str, PublicKey]:
    return {pair.key_id: pair.public_key for pair in pairs}


@pytest.mark.parametrize("which", [0, 1], ids=["rsa", "ed25519"])
def test_signature_made_by_the_sdk_verifies(keys: tuple[KeyPair, KeyPair], which: int) -> None:
    key = keys[which]
    headers = signed_headers(key, "POST", PATH, NOW_MS)
    assert verify_signature(registry(*keys), "POST", PATH + "?x=1", headers, NOW_MS) == key.key_id


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("method", "invalid_signature"),
        ("path", "invalid_signature"),
        ("other-key", "invalid_signature"),
        ("unknown-key", "unknown_api_key"),
        ("missing", "missing_auth_headers"),
        ("not-base64", "invalid_signature"),
        ("not-a-number", "invalid_timestamp"),
        ("31s-old", "timestamp_skew"),
        ("31s-ahead", "timestamp_skew"),
    ],
)
def test_bad_signature_headers_are_refused(
    keys: tuple[KeyPair, KeyPair], change: str, code: str
) -> None:
    rsa_key, ed_key = keys
    method, path, now = "GET", PATH, NOW_MS
    headers = signed_headers(rsa_key, "GET", PATH, NOW_MS)
    if change == "method":
        method = "DELETE"
    elif change == "path":
        path = f"{PREFIX}/portfolio/balance"
    elif change == "other-key":
        headers["kalshi-access-signature"] = signed_headers(ed_key, "GET", PATH, NOW_MS)[
            "kalshi-access-signature"
        ]
    elif change == "unknown-key":
        headers["kalshi-access-key"] = "nobody"
    elif change == "missing":
        del headers["kalshi-access-signature"]
    elif change == "not-base64":
        headers["kalshi-access-signature"] = "***"
    elif change == "not-a-number":
        headers["kalshi-access-timestamp"] = "soon"
    elif change == "31s-old":
        now = NOW_MS + 31_000
    else:
        now = NOW_MS - 31_000
    with pytest.raises(AuthFailure) as info:
        verify_signature(registry(*keys), method, path, headers, now)
    assert info.value.code == code


def test_timestamp_within_30s_is_accepted(keys: tuple[KeyPair, KeyPair]) -> None:
    headers = signed_headers(keys[1], "GET", PATH, NOW_MS)
    for now in (NOW_MS - 30_000, NOW_MS + 30_000):
        assert verify_signature(registry(*keys), "GET", PATH, headers, now) == "ed-key"


def sample_path(op: Operation) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: f"V-{m.group(1)}", op.path)


@pytest.mark.parametrize("op", list(operations()), ids=lambda op: op.operation_id)
def test_every_operation_routes_to_itself_and_answers_its_schema(op: Operation) -> None:
    found = route(op.method, sample_path(op))
    assert found is not None
    matched, values = found
    assert matched is op
    assert values == {p.name: f"V-{p.name}" for p in op.path_params}
    body = response_body(op, values, "")
    if op.response_model is None:
        assert body == b""
    else:
        op.response_model.model_validate_json(body)


def test_literal_segments_win_over_templates() -> None:
    for path, operation_id in [
        ("/markets/trades", "GetTrades"),
        ("/markets/KX", "GetMarket"),
        ("/events/multivariate", "GetMultivariateEvents"),
        ("/events/KXEVENT", "GetEvent"),
    ]:
        found = route("GET", path)
        assert found is not None and found[0].operation_id == operation_id


def test_paginated_answers_serve_three_pages() -> None:
    op = next(o for o in operations() if o.operation_id == "GetMarkets")
    pages = [json.loads(response_body(op, {}, q)) for q in ("limit=2", "cursor=p2", "cursor=p3")]
    assert [p["cursor"] for p in pages] == ["p2", "p3", ""]
    tickers = [m["ticker"] for p in pages for m in p["markets"]]
    assert len(set(tickers)) == 6


# ---- the running server, spoken to with a bare TLS socket -------------------------------------


def exchange(server: ApiServer, request: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_unsigned_private_call_is_a_401_error_response(fresh_api_server: ApiServer) -> None:
    head, body = exchange(
        fresh_api_server,
        b"GET /trade-api/v2/portfolio/balance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 401 ")
    assert json.loads(body) == {
        "code": "missing_auth_headers",
        "message": "KALSHI-ACCESS-* headers are missing",
        "details": "signature check",
    }
    [seen] = fresh_api_server.requests()
    assert (seen.operation_id, seen.auth, seen.status) == ("GetBalance", None, 401)


def test_signed_call_over_the_wire_is_accepted(fresh_api_server: ApiServer) -> None:
    key = fresh_api_server.ed25519
    path = f"{PREFIX}/portfolio/balance"
    headers = signed_headers(key, "GET", path, time.time_ns() // 1_000_000)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head, body = exchange(
        fresh_api_server,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{lines}\r\n".encode(),
    )
    assert head.startswith(b"HTTP/1.1 200 ")
    assert "balance" in json.loads(body)
    assert fresh_api_server.requests()[0].auth == key.key_id


def test_scripted_fault_is_used_once(fresh_api_server: ApiServer) -> None:
    fresh_api_server.script("/exchange/status", Fault(status=503, code="busy"))
    request = b"GET /trade-api/v2/exchange/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    first_head, first_body = exchange(fresh_api_server, request)
    second_head, _ = exchange(fresh_api_server, request)
    assert first_head.startswith(b"HTTP/1.1 503 ")
    assert json.loads(first_body)["code"] == "busy"
    assert second_head.startswith(b"HTTP/1.1 200 ")
    assert fresh_api_server.pending_faults() == 0
    assert fresh_api_server.connections() == 2


def test_dropped_answer_is_cut_short(fresh_api_server: ApiServer) -> None:
    fresh_api_server.script("/exchange/status", Fault(drop=True))
    head, body = exchange(
        fresh_api_server, b"GET /trade-api/v2/exchange/status HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert 0 < len(body) < length


def test_untrusting_client_cannot_connect(fresh_api_server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", fresh_api_server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
