"""Scenarios: the markets, liquidity and scripted actions a local exchange starts from.

A scenario is plain data (a mapping, as read from JSON by whoever loads it; the core reads no
files). `build_exchange` turns it into an `Exchange` at the scenario's start time; `run_actions`
applies the scripted actions due by a given time. Given the same scenario and the same calls, the
exchange ends in the same state and answers with the same bytes.

Shape (prices and amounts are decimal strings; times are milliseconds after ``start_ms``)::

    {
      "name": "default",
      "start_ms": 1767225600000,
      "series":   [{"ticker", "title", "category", "frequency"?, "fee_type"?, "fee_multiplier"?, "tags"?}],
      "events":   [{"event_ticker", "series_ticker", "title", "sub_title"?, "mutually_exclusive"?}],
      "markets":  [{"ticker", "event_ticker", "title", "yes_sub_title", "no_sub_title",
                    "open_after_ms"?, "close_after_ms", "tick"?, "rules_primary"?, "rules_secondary"?}],
      "accounts": [{"user_id", "balance"}],
      "liquidity": [{"user_id", "ticker", "side": "bid"|"ask", "price", "count"}],
      "actions":  [{"at_ms", "do": "place"|"cancel_all"|"close"|"determine"|"settle", ...}]
    }
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from kalshi_proto.sim.exchange import EventState, Exchange, ExchangeError, MarketState, SeriesState
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce

__all__ = ["build_exchange", "liquidity_client_order_id", "run_actions"]


def liquidity_client_order_id(index: int) -> str:
    """The client order id of the scenario's ``index``-th liquidity order."""
    return f"scenario-{index:04d}"


def build_exchange(scenario: Mapping[str, Any], *, seed: int = 0) -> Exchange:
    """Create the exchange a scenario describes, with its resting liquidity placed.

    Raises:
        ValueError: the scenario is not shaped as the module docstring says (a missing key, a
            value of the wrong kind, a malformed number), refers to a series, event, market or
            user it does not define, or has a liquidity order the exchange refuses. The
            message names the entry, e.g. ``scenario markets[2]: missing 'title'``.
    """
    if not isinstance(scenario, Mapping):
        raise ValueError(f"a scenario must be an object, not {type(scenario).__name__}")
    with _reading(""):
        start = int(scenario["start_ms"])
    exchange = Exchange(seed=seed)
    exchange.wall_ms = start
    for index, s in enumerate(_entries(scenario, "series")):
        with _reading(f"series[{index}]"):
            exchange.add_series(
                SeriesState(
                    ticker=s["ticker"],
                    title=s["title"],
                    category=s["category"],
                    frequency=s.get("frequency", "daily"),
                    fee_type=s.get("fee_type", "quadratic"),
                    fee_multiplier=Decimal(str(s.get("fee_multiplier", "1"))),
                    tags=tuple(s.get("tags", ())),
                )
            )
    for index, e in enumerate(_entries(scenario, "events")):
        with _reading(f"events[{index}]"):
            exchange.add_event(
                EventState(
                    event_ticker=e["event_ticker"],
                    series_ticker=e["series_ticker"],
                    title=e["title"],
                    sub_title=e.get("sub_title", ""),
                    mutually_exclusive=bool(e.get("mutually_exclusive", False)),
                )
            )
    for index, mk in enumerate(_entries(scenario, "markets")):
        with _reading(f"markets[{index}]"):
            open_ms = start + int(mk.get("open_after_ms", 0))
            exchange.add_market(
                MarketState(
                    ticker=mk["ticker"],
                    event_ticker=mk["event_ticker"],
                    title=mk["title"],
                    yes_sub_title=mk["yes_sub_title"],
                    no_sub_title=mk["no_sub_title"],
                    open_ms=open_ms,
                    close_ms=start + int(mk["close_after_ms"]),
                    created_ms=start,
                    status="active" if open_ms <= start else "initialized",
                    tick=Decimal(str(mk.get("tick", "0.01"))),
                    rules_primary=mk.get("rules_primary", ""),
                    rules_secondary=mk.get("rules_secondary", ""),
                )
            )
    for index, a in enumerate(_entries(scenario, "accounts")):
        with _reading(f"accounts[{index}]"):
            exchange.add_account(a["user_id"], Decimal(str(a["balance"])))
    for index, order in enumerate(_entries(scenario, "liquidity")):
        with _reading(f"liquidity[{index}]"):
            _place(exchange, order, liquidity_client_order_id(index), start)
    _entries(scenario, "actions")  # applied later (run_actions), but shaped now
    return exchange


def _entries(scenario: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    # A section is a list of objects, or absent.
    value = scenario.get(section, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"scenario {section}: must be a list of objects")
    return list(value)


@contextmanager
def _reading(where: str) -> Iterator[None]:
    # What a malformed entry raises becomes a ValueError that names the entry.
    place = f"scenario {where}" if where else "scenario"
    try:
        yield
    except KeyError as exc:
        raise ValueError(f"{place}: missing {exc.args[0]!r}") from None
    except ExchangeError as exc:
        raise ValueError(f"{place}: refused by the exchange: {exc}") from None
    except ArithmeticError:  # decimal.InvalidOperation, whose text names no value
        raise ValueError(f"{place}: a number is malformed") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{place}: {exc}") from None


def _place(exchange: Exchange, order: Mapping[str, Any], client_order_id: str, wall_ms: int) -> None:
    exchange.place_order(
        order["user_id"],
        ticker=order["ticker"],
        side=Side(order["side"]),
        price=Decimal(str(order["price"])),
        count=Decimal(str(order["count"])),
        tif=TimeInForce(order.get("time_in_force", "good_till_canceled")),
        stp=StpMode(order.get("self_trade_prevention_type", "maker")),
        client_order_id=client_order_id,
        wall_ms=wall_ms,
    )


def run_actions(exchange: Exchange, actions: Sequence[Mapping[str, Any]], start_ms: int, until_ms: int, done: int = 0) -> int:
    """Apply the scripted actions due by ``until_ms``, from index ``done`` on.

    Returns:
        The index of the first action not yet applied; pass it back as ``done`` next time.
    """
    while done < len(actions) and start_ms + int(actions[done]["at_ms"]) <= until_ms:
        action = actions[done]
        at = start_ms + int(action["at_ms"])
        exchange.advance(at)
        kind = action["do"]
        if kind == "place":
            _place(exchange, action, action.get("client_order_id", f"action-{done:04d}"), at)
        elif kind == "cancel_all":
            exchange.cancel_all(action["user_id"], at)
        elif kind == "close":
            exchange.close_market(action["ticker"], at)
        elif kind == "determine":
            exchange.determine_market(action["ticker"], action["result"], at)
        elif kind == "settle":
            exchange.settle_market(action["ticker"], at)
        else:
            raise ValueError(f"unknown scenario action {kind!r}")
        done += 1
    return done
