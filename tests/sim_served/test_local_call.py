"""`LocalExchange.call`: changes to the exchange's state run where the exchange is served."""

from __future__ import annotations

import threading

import anyio
import pytest

from kalshi_anyio.sim import serve_exchange, serve_exchange_in_thread
from kalshi_proto.errors import LocalProtocolError
from kalshi_sync import KalshiClient

HOLD = "KXFED-26JAN-HOLD"


def test_call_runs_on_the_serving_thread_between_requests() -> None:
    # Requests are answered on the portal's thread; a change made from the test's thread could
    # land in the middle of one. `call` runs it there instead, and gives back its result.
    with serve_exchange_in_thread() as local, KalshiClient(**local.client_options()) as client:
        assert local.portal is not None
        assert local.call(threading.get_ident) != threading.get_ident()
        exchange = local.exchange
        assert local.call(exchange.market, HOLD).status == "active"
        local.call(exchange.determine_market, HOLD, "no", exchange.wall_ms)
        assert local.call(lambda: exchange.market(HOLD).result) == "no"
        assert client.markets.get(HOLD).market.result == "no"
        with pytest.raises(ValueError, match=r"^result must be 'yes' or 'no', not 'maybe'$"):
            local.call(exchange.determine_market, HOLD, "maybe", exchange.wall_ms)


def test_call_after_the_exchange_stopped_says_so() -> None:
    with serve_exchange_in_thread() as local:
        assert local.call(int, "7") == 7
    with pytest.raises(LocalProtocolError, match=r"^the local exchange has stopped: "):
        local.call(int, "7")  # was anyio's RuntimeError('This portal is not running')


def test_call_raises_the_functions_own_runtime_error() -> None:
    def fails() -> None:
        raise RuntimeError("from the function")

    with serve_exchange_in_thread() as local, pytest.raises(RuntimeError, match=r"^from the"):
        local.call(fails)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_call_runs_at_once_on_the_serving_loop(backend: str) -> None:
    async def main() -> None:
        async with serve_exchange() as local:
            assert local.portal is None
            assert local.call(threading.get_ident) == threading.get_ident()
            assert local.call(divmod, 7, 2) == (3, 1)

    anyio.run(main, backend=backend)
