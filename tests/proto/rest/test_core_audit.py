"""Gaps a mutation audit of the REST core found: retry, pagination, rate limits, runs, parsing,
HTTP/1.1, signing and base URLs. (The one in `build_call` is in test_call.py, beside its kin.)"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import CredentialsError, RemoteProtocolError
from kalshi_proto.rest.call import Call, HttpRequest
from kalshi_proto.rest.client import Claim, RestConfig, RestCore, SendRequest
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.http11 import Http11Connection
from kalshi_proto.rest.ratelimit import Bucket, BucketLimit, RateLimiter, TokenBucket
from tests.helpers.clock import FakeClock
from tests.proto.rest.conftest import KEY_ID

BASE = resolve_base_url()


def make_core(*, limiter: RateLimiter, credentials: Credentials) -> RestCore:
    config = RestConfig(base_url=BASE, credentials=credentials)
    return RestCore(config, rng=lambda: 0.5, rate_limiter=limiter)


# ---- CallRun and the rate limiter ----------------------------------------------------------


def test_a_batch_call_built_by_hand_is_charged_as_one_item(
    clock: FakeClock, ed25519_private_key: ed25519.Ed25519PrivateKey
) -> None:
    # BatchCancelOrdersV2 costs 2 Write tokens per order.
    limiter = RateLimiter.from_limits(20, 30, 20, 30)
    credentials = Credentials(KEY_ID, Signer.from_private_key(ed25519_private_key))
    core = make_core(limiter=limiter, credentials=credentials)
    built = calls.batch_cancel_orders_v2(m.BatchCancelOrdersV2Request(orders=[]))
    by_hand: Call[m.BatchCancelOrdersV2Response] = Call(
        operation=built.operation, path=built.path, body=built.body
    )
    run = core.start(by_hand, clock.now)
    assert isinstance(run.next_step(clock.now, clock.wall_ms), Claim)
    step = run.next_step(clock.now, clock.wall_ms)
    assert isinstance(step, SendRequest)
    assert step.request.method == "DELETE"
    assert limiter.bucket(Bucket.WRITE).available(clock.now) == 28.0


def test_a_refund_of_no_tokens_is_accepted_and_changes_nothing() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(25, 0.0) == 0.5
    bucket.refund(0)
    assert bucket.available(0.0) == -5.0


def test_a_batch_refund_without_an_item_count_gives_back_one_item() -> None:
    # BatchCreateOrdersV2 costs 10 Write tokens per order.
    limiter = RateLimiter.from_limits(20, 100, 20, 100)
    assert limiter.reserve("BatchCreateOrdersV2", 0.0, items=3) == 0.0
    limiter.refund("BatchCreateOrdersV2")
    assert limiter.bucket(Bucket.WRITE).available(0.0) == 80.0


# ---- Http11Connection ----------------------------------------------------------------------


def test_a_status_line_in_the_second_read_of_a_head_is_a_bad_header_not_a_response() -> None:
    conn = Http11Connection("api.elections.kalshi.com")
    conn.send_request(
        HttpRequest(method="GET", target="/trade-api/v2/markets", headers=(), body=b"")
    )
    conn.receive_data(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n", 0.0)
    with pytest.raises(RemoteProtocolError, match=r"^invalid HTTP/1.1 response: "):
        conn.receive_data(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0.0)
    assert conn.closed
    assert conn.next_event() is None


# ---- Signer --------------------------------------------------------------------------------


def test_a_key_openssl_cannot_set_up_is_reported_as_a_corrupt_pem(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    # One bit turns Ed25519's OID (1.3.101.112) into X448's (1.3.101.111): cryptography raises
    # InternalError, which must read as an unusable PEM, not as a key of an unknown type.
    der = ed25519_private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    x448 = base64.encodebytes(der.replace(b"\x2b\x65\x70", b"\x2b\x65\x6f"))
    pem = b"-----BEGIN PRIVATE KEY-----\n" + x448 + b"-----END PRIVATE KEY-----\n"
    with pytest.raises(CredentialsError) as info:
        Signer.from_pem(pem)
    assert str(info.value) == (
        "cannot load private key: the private key PEM is corrupt or truncated and could not be "
        "parsed"
    )
