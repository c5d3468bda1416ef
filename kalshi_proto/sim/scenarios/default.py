"""The default scenario: three series, three events, twelve markets with two-sided liquidity.

The market maker ``mm`` quotes a three-level ladder on each side of every market. Everything
starts on 2026-01-01 00:00 UTC and trades for thirty days.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["START_MS", "default_scenario"]

START_MS = 1_767_225_600_000  #: 2026-01-01T00:00:00Z
DAY_MS = 86_400_000

_SERIES: list[dict[str, Any]] = [
    {"ticker": "KXFED", "title": "Fed funds rate decision", "category": "Economics", "frequency": "monthly",
     "fee_type": "quadratic_with_maker_fees", "fee_multiplier": "1", "tags": ["Fed", "Rates"]},
    {"ticker": "KXBTCD", "title": "Bitcoin price at 5pm ET", "category": "Crypto", "frequency": "daily",
     "fee_type": "quadratic", "fee_multiplier": "1", "tags": ["BTC"]},
    {"ticker": "KXHIGHNY", "title": "Highest temperature in NYC", "category": "Climate and Weather",
     "frequency": "daily", "fee_type": "quadratic", "fee_multiplier": "0.5", "tags": ["Weather"]},
]

_EVENTS: list[dict[str, Any]] = [
    {"event_ticker": "KXFED-26JAN", "series_ticker": "KXFED", "title": "Fed decision in January 2026",
     "sub_title": "Jan 28, 2026", "mutually_exclusive": True},
    {"event_ticker": "KXBTCD-26JAN3017", "series_ticker": "KXBTCD", "title": "Bitcoin price on Jan 30, 2026 at 5pm ET",
     "sub_title": "Jan 30, 2026"},
    {"event_ticker": "KXHIGHNY-26JAN30", "series_ticker": "KXHIGHNY", "title": "Highest temperature in NYC on Jan 30, 2026",
     "sub_title": "Jan 30, 2026", "mutually_exclusive": True},
]

# (ticker suffix, event, title, yes subtitle, mid price, tick)
_MARKETS = [
    ("KXFED-26JAN-H25", "KXFED-26JAN", "Will the Fed hike by 25 bps?", "Hike 25 bps", "0.04", "0.01"),
    ("KXFED-26JAN-HOLD", "KXFED-26JAN", "Will the Fed hold rates?", "Hold", "0.81", "0.01"),
    ("KXFED-26JAN-C25", "KXFED-26JAN", "Will the Fed cut by 25 bps?", "Cut 25 bps", "0.14", "0.01"),
    ("KXFED-26JAN-C50", "KXFED-26JAN", "Will the Fed cut by 50 bps or more?", "Cut 50+ bps", "0.02", "0.01"),
    ("KXBTCD-26JAN3017-T95000", "KXBTCD-26JAN3017", "Bitcoin above $95,000?", "$95,000 or above", "0.78", "0.01"),
    ("KXBTCD-26JAN3017-T100000", "KXBTCD-26JAN3017", "Bitcoin above $100,000?", "$100,000 or above", "0.55", "0.01"),
    ("KXBTCD-26JAN3017-T105000", "KXBTCD-26JAN3017", "Bitcoin above $105,000?", "$105,000 or above", "0.31", "0.01"),
    ("KXBTCD-26JAN3017-T110000", "KXBTCD-26JAN3017", "Bitcoin above $110,000?", "$110,000 or above", "0.12", "0.01"),
    ("KXHIGHNY-26JAN30-B31", "KXHIGHNY-26JAN30", "NYC high 30-31°F?", "30° to 31°", "0.18", "0.001"),
    ("KXHIGHNY-26JAN30-B33", "KXHIGHNY-26JAN30", "NYC high 32-33°F?", "32° to 33°", "0.34", "0.001"),
    ("KXHIGHNY-26JAN30-B35", "KXHIGHNY-26JAN30", "NYC high 34-35°F?", "34° to 35°", "0.29", "0.001"),
    ("KXHIGHNY-26JAN30-T35", "KXHIGHNY-26JAN30", "NYC high above 35°F?", "36° or above", "0.17", "0.001"),
]


def default_scenario() -> dict[str, Any]:
    """A fresh copy of the default scenario."""
    markets = []
    liquidity = []
    for ticker, event, title, yes_sub, mid_text, tick_text in _MARKETS:
        markets.append(
            {
                "ticker": ticker,
                "event_ticker": event,
                "title": title,
                "yes_sub_title": yes_sub,
                "no_sub_title": "Not " + yes_sub[:1].lower() + yes_sub[1:],
                "close_after_ms": 29 * DAY_MS,
                "tick": tick_text,
                "rules_primary": f"If the outcome is {yes_sub.lower()}, the market resolves to Yes.",
                "rules_secondary": "Settlement follows the source named in the series.",
            }
        )
        mid = Decimal(mid_text)
        step = Decimal("0.01")
        for level in range(1, 4):
            bid = mid - step * level
            ask = mid + step * level
            size = str(100 * level)
            if bid > 0:
                liquidity.append({"user_id": "mm", "ticker": ticker, "side": "bid", "price": str(bid), "count": size})
            liquidity.append({"user_id": "mm", "ticker": ticker, "side": "ask", "price": str(ask), "count": size})
    return {
        "name": "default",
        "start_ms": START_MS,
        "series": [dict(s) for s in _SERIES],
        "events": [dict(e) for e in _EVENTS],
        "markets": markets,
        "accounts": [{"user_id": "mm", "balance": "1000000"}],
        "liquidity": liquidity,
        "actions": [],
    }
