"""Reliability against the local exchange's injected faults, with a real client over loopback.

GETs ride out 429s, 5xx bursts and dropped connections by retrying; a POST is never resent, so
a dropped answer to an order is reported and the order is found by its client_order_id.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import RateLimitError, ReadError, ServerError
from kalshi_proto.rest.generated.models import CreateOrderV2Request
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.rest import Faults
from kalshi_sync import KalshiClient

FAST = RetryPolicy(max_attempts=12, base_delay=0.001, retry_max_delay=0.01, retry_after_cap=0.01, total_timeout=10)


def test_gets_ride_out_rate_limits_and_server_error_bursts() -> None:
    faults = Faults(rate_limit_share=0.2, retry_after=0.001, error_share=0.1, error_burst=2)
    with serve_exchange_in_thread(faults=faults, seed=7, key_type="ed25519") as local:
        with KalshiClient(**local.client_options(), retry=FAST) as client:
            for _ in range(30):
                assert client.exchange.status().trading_active
            assert len(list(client.markets.list_all(limit=3))) == 12
        answered = local.app.requests
    assert answered > 34  # some of the 34 calls needed more than one request


def test_without_retries_the_faults_surface_as_typed_errors() -> None:
    with serve_exchange_in_thread(faults=Faults(rate_limit_share=1.0), key_type="ed25519") as local:
        with KalshiClient(**local.client_options(), retry=RetryPolicy.disabled()) as client:
            with pytest.raises(RateLimitError) as limited:
                client.exchange.status()
    assert limited.value.retry_after is None  # the real API sends no Retry-After either
    with serve_exchange_in_thread(faults=Faults(error_share=1.0, error_status=502), key_type="ed25519") as local:
        with KalshiClient(**local.client_options(), retry=RetryPolicy.disabled()) as client:
            with pytest.raises(ServerError) as failed:
                client.exchange.status()
    assert failed.value.status == 502


def test_a_dropped_answer_to_an_order_is_not_resent() -> None:
    with serve_exchange_in_thread(faults=Faults(drop_share=1.0), key_type="ed25519") as local:
        with KalshiClient(**local.client_options(), retry=FAST) as client:
            order = CreateOrderV2Request(
                ticker="KXBTCD-26JAN3017-T100000",
                client_order_id="dropped-1",
                side="bid",
                count=Decimal("1"),
                price=Decimal("0.50"),
                time_in_force="good_till_canceled",
                self_trade_prevention_type="maker",
            )
            with pytest.raises(ReadError):
                client.orders.create_v2(order)
        counts = local.app.operation_counts
        # The exchange took the order once; the client did not send it again.
        assert counts["CreateOrderV2"] == 1
        placed = [o for o in local.exchange.orders.values() if o.client_order_id == "dropped-1"]
        assert len(placed) == 1 and placed[0].status == "resting"
