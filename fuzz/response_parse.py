"""Fuzz what the core makes of a complete response: `Call.parse` and the retry decision after it.

The invariant: any status, headers and body give the operation's model (a 2xx that matches
its schema), `RemoteProtocolError` (a 2xx that does not), or the `ApiError` its status maps to;
and a `CallRun` fed the same response either finishes with one of those or asks for a finite,
non-negative sleep before trying again. Nothing else escapes: no RecursionError from a
deeply nested body, no UnicodeDecodeError from bytes that are not UTF-8, no OverflowError from
a ``Retry-After`` of a thousand digits. Run ``python fuzz/response_parse.py [--seconds 600]``;
see ``fuzz/_runner.py`` for ``--atheris`` and ``--replay``.

An input is: one byte choosing the operation, two choosing the status (100 to 599), then
header lines (``name: value``, one per ``\\n``) up to a blank line, then the body.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fuzz._runner import run
from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ApiError, KalshiError, RemoteProtocolError
from kalshi_proto.rest.call import Call, HttpResponse
from kalshi_proto.rest.client import Finished, RestConfig, RestCore, SendRequest, Sleep
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.rest import ExchangeApp
from kalshi_proto.sim.scenario import build_exchange
from kalshi_proto.sim.scenarios.default import START_MS, default_scenario

WALL_MS = START_MS  # the local exchange's scenario starts here
_TICKER = "KXFED-26JAN-HOLD"
_KEY_ID = "fuzz-key"
_KEY = ed25519.Ed25519PrivateKey.generate()

_ORDER = m.CreateOrderV2Request(
    ticker=_TICKER,
    client_order_id="fuzz-0001",
    side="bid",
    count=Decimal("1"),
    price=Decimal("0.50"),
    time_in_force="good_till_canceled",
    self_trade_prevention_type="maker",
)
#: The operations tried: a page, a small object, one with a path parameter, and a POST (which
#: is never retried, so its run always ends at the first answer).
OPERATIONS: tuple[Callable[[], Call[Any]], ...] = (
    lambda: calls.get_markets(limit=3),
    calls.get_exchange_status,
    lambda: calls.get_market(_TICKER),
    lambda: calls.create_order_v2(_ORDER),
)
_CORE = RestCore(
    RestConfig(
        base_url=resolve_base_url(),
        credentials=Credentials(_KEY_ID, Signer(_KEY)),
        retry=RetryPolicy(max_attempts=3, total_timeout=60.0),
    ),
    rng=lambda: 0.5,
)


def encode(operation: int, response: HttpResponse) -> bytes:
    """The input that stands for ``response`` to ``OPERATIONS[operation]``."""
    head = "".join(f"{name}: {value}\n" for name, value in response.headers)
    return (
        bytes([operation])
        + (response.status - 100).to_bytes(2, "big")
        + head.encode("latin-1")
        + b"\n"
        + response.body
    )


def _local_exchange_answers() -> list[bytes]:
    # Real answers to every operation, from the local exchange: valid bodies to mutate.
    exchange = build_exchange(default_scenario())
    public_pem = _KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    exchange.add_account("fuzz", Decimal(10_000), {_KEY_ID: public_pem})
    app = ExchangeApp(exchange, epoch_ms=START_MS)
    answers = []
    for index, make in enumerate(OPERATIONS):
        request = _CORE.build_request(make(), START_MS)
        reply = app.handle(request, now=0.0, wall_ms=START_MS)
        assert 200 <= reply.response.status < 300, reply.response
        answers.append(encode(index, reply.response))
    return answers


SEEDS = [
    *_local_exchange_answers(),
    b'\x00\x01\x49retry-after: 2\nx-request-id: r1\n\n{"error":"too many requests"}',
    b'\x01\x01\x2cretry-after: Wed, 21 Oct 2015 07:28:00 GMT\n\n{"code":"x","message":"y"}',
    b'\x03\x01\x90\n\n{"error":{"code":"internal","message":"boom","details":"d"}}',
    b"\x02\x00\x00\n\n",
]
TOKENS = [
    b"\n",
    b"\n\n",
    b"retry-after: ",
    b"x-request-id: ",
    b"99999999999999999999999999999",
    b"1.5",
    b"-1",
    b"null",
    b"[[[[[[[[[[[[[[[[",
    b"[" * 1500,  # deeper than the interpreter's recursion limit
    b'{"a":' * 1500,
    b'{"error":',
    b'"markets":',
    b'"cursor":',
    b'"0.5600"',
    b"\xff\xfe",
    b"\\ud800",
    b"1e999",
    b"NaN",
]


def decode(data: bytes) -> tuple[Call[Any], HttpResponse]:
    """The call and the response an input stands for."""
    head, _, rest = data[3:].partition(b"\n\n")
    headers = []
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon:
            text = name.decode("latin-1").strip().lower()
            headers.append((text, value.decode("latin-1").strip()))
    operation = OPERATIONS[data[0] % len(OPERATIONS)] if data else OPERATIONS[0]
    status = 100 + int.from_bytes(data[1:3].ljust(2, b"\x00"), "big") % 500
    return operation(), HttpResponse(status=status, headers=tuple(headers), body=rest)


def _check_parse(call: Call[Any], response: HttpResponse) -> None:
    success = 200 <= response.status < 300
    try:
        call.parse(response, wall_ms=WALL_MS)
    except ApiError as exc:
        assert not success, exc
        assert exc.status == response.status
        assert str(exc) and repr(exc)
    except RemoteProtocolError as exc:
        assert success, exc
    else:
        assert success


def _check_run(call: Call[Any], response: HttpResponse) -> None:
    run_ = _CORE.start(call, 0.0)
    step = run_.next_step(0.0, WALL_MS)
    assert isinstance(step, SendRequest)
    run_.receive_response(response, 0.0, WALL_MS)
    step = run_.next_step(0.0, WALL_MS)
    if isinstance(step, Sleep):
        assert call.method == "GET"
        assert 0 <= step.seconds and math.isfinite(step.seconds), step
        return
    assert isinstance(step, Finished), step
    try:
        run_.result()
    except KalshiError:
        pass


def check(data: bytes) -> None:
    """Parse the response directly and through a call run; only the SDK's errors may come out."""
    call, response = decode(data)
    _check_parse(call, response)
    _check_run(call, response)


if __name__ == "__main__":
    sys.exit(run("response_parse", check, SEEDS, TOKENS))
