"""Scenarios: the markets, liquidity and scripted actions a local exchange starts from.

A scenario is plain data (a mapping, as read from JSON by whoever loads it; the core reads no
files). `build_exchange` turns it into an `Exchange` at the scenario's start time; `run_actions`
applies the scripted actions due by a given time. Given the same scenario and the same calls, the
exchange ends in the same state and answers with the same bytes.

Actions are checked when the scenario is built (`check_actions`): each names a known kind, has
the keys that kind needs, refers to users and markets the scenario defines, and comes no earlier
than the one before it. An action can still be refused when it comes due (settling a market
nobody determined, an order off the market's tick): `run_actions` then records an
`ActionRefused` and goes on with the next one, so one refused action neither stops the script
nor runs twice.

Shape (prices and amounts are decimal strings; times are milliseconds after ``start_ms``)::

    {
      "name": "default",
      "start_ms": 1767225600000,
      "series":   [{"ticker", "title", "category", "frequency"?, "fee_type"?, "fee_multiplier"?, "tags"?}],
      "events":   [{"event_ticker", "series_ticker", "title", "sub_title"?, "mutually_exclusive"?}],
      "markets":  [{"ticker", "event_ticker", "title", "yes_sub_title", "no_sub_title",
                    "open_after_ms"?, "close_after_ms", "tick"? | "price_level_structure"?,
                    "rules_primary"?, "rules_secondary"?}],
      "accounts": [{"user_id", "balance"}],
      "liquidity": [{"user_id", "ticker", "side": "bid"|"ask", "price", "count"}],
      "actions":  [{"at_ms", "do": "place"|"cancel_all"|"close"|"determine"|"settle", ...}]
    }
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kalshi_proto.sim.exchange import (
    PRICE_LEVEL_STRUCTURES,
    EventState,
    Exchange,
    ExchangeError,
    MarketState,
    SeriesState,
)
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce

__all__ = ["ActionRefused", "build_exchange", "check_actions", "liquidity_client_order_id", "run_actions"]

#: The keys each kind of scripted action needs besides ``at_ms`` and ``do``.
_ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "place": ("user_id", "ticker", "side", "price", "count"),
    "cancel_all": ("user_id",),
    "close": ("ticker",),
    "determine": ("ticker", "result"),
    "settle": ("ticker",),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRefused:
    """A scripted action the exchange refused when it came due; the actions after it still run."""

    index: int  #: its place in the scenario's ``actions``
    action: Mapping[str, Any]
    at_ms: int  #: when it came due, on the exchange's clock
    status: int  #: the refusal, as the REST layer would answer it
    code: str
    message: str

    def __str__(self) -> str:
        return f"scenario actions[{self.index}] ({self.action.get('do')}): refused by the exchange: {self.code}: {self.message}"


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
                    **_price_levels(mk),
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
    check_actions(exchange, _entries(scenario, "actions"))  # applied later (run_actions)
    return exchange


def check_actions(exchange: Exchange, actions: Sequence[Mapping[str, Any]]) -> None:
    """Check scripted actions against the exchange they will run on, before any runs.

    Raises:
        ValueError: an action is malformed (not an object, an unknown ``do``, a missing key, a
            malformed number or enum value, an unknown user or market, a ``result`` other than
            yes or no) or due before the action ahead of it. The message names the action,
            e.g. ``scenario actions[1]: missing 'ticker'``.
    """
    previous = 0
    for index, action in enumerate(actions):
        with _reading(f"actions[{index}]"):
            if not isinstance(action, Mapping):
                raise ValueError(f"must be an object, not {type(action).__name__}")
            at = int(action["at_ms"])
            if at < previous:
                raise ValueError(f"at_ms {at} is before the previous action's {previous}")
            previous = at
            needed = _ACTION_KEYS.get(action["do"])
            if needed is None:
                raise ValueError(f"unknown scenario action {action['do']!r}; expected one of {', '.join(_ACTION_KEYS)}")
            for key in needed:
                if key not in action:
                    raise KeyError(key)
            if "user_id" in needed and action["user_id"] not in exchange.accounts:
                raise ValueError(f"unknown user {action['user_id']!r}")
            if "ticker" in needed:
                exchange.market(action["ticker"])  # 404 when unknown, refused at build time
            if action["do"] == "place":
                _order_fields(action)
            if action["do"] == "determine" and action["result"] not in ("yes", "no"):
                raise ValueError(f"result must be 'yes' or 'no', not {action['result']!r}")


def _entries(scenario: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    # A section is a list of objects, or absent.
    value = scenario.get(section, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"scenario {section}: must be a list of objects")
    return list(value)


def _price_levels(market: Mapping[str, Any]) -> dict[str, Any]:
    # "tick": one step from 0 to 1 ("0.01" is linear_cent, "0.001" deci_cent, others custom);
    # "price_level_structure": a structure by name, such as tapered_deci_cent. Neither: cents.
    if "tick" in market and "price_level_structure" in market:
        raise ValueError("give tick or price_level_structure, not both")
    if "price_level_structure" not in market:
        return {"tick": Decimal(str(market.get("tick", "0.01")))}
    name = market["price_level_structure"]
    if name not in PRICE_LEVEL_STRUCTURES:
        known = ", ".join(sorted(PRICE_LEVEL_STRUCTURES))
        raise ValueError(f"price_level_structure must be one of {known}, not {name!r}")
    return {"price_level_structure": name, "grid": PRICE_LEVEL_STRUCTURES[name]}


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


def _order_fields(order: Mapping[str, Any]) -> tuple[Side, Decimal, Decimal, TimeInForce, StpMode]:
    return (
        Side(order["side"]),
        Decimal(str(order["price"])),
        Decimal(str(order["count"])),
        TimeInForce(order.get("time_in_force", "good_till_canceled")),
        StpMode(order.get("self_trade_prevention_type", "maker")),
    )


def _place(exchange: Exchange, order: Mapping[str, Any], client_order_id: str, wall_ms: int) -> None:
    side, price, count, tif, stp = _order_fields(order)
    exchange.place_order(
        order["user_id"],
        ticker=order["ticker"],
        side=side,
        price=price,
        count=count,
        tif=tif,
        stp=stp,
        client_order_id=client_order_id,
        wall_ms=wall_ms,
    )


def run_actions(
    exchange: Exchange, actions: Sequence[Mapping[str, Any]], start_ms: int, until_ms: int, done: int = 0
) -> tuple[int, tuple[ActionRefused, ...]]:
    """Apply the scripted actions due by ``until_ms``, from index ``done`` on.

    The actions must have passed `check_actions` (`build_exchange` checks a scenario's). One the
    exchange refuses is skipped and reported, once; the ones after it still run.

    Returns:
        The index of the first action not yet applied (pass it back as ``done`` next time), and
        the actions refused on the way.
    """
    refused: list[ActionRefused] = []
    while done < len(actions) and start_ms + int(actions[done]["at_ms"]) <= until_ms:
        action = actions[done]
        at = start_ms + int(action["at_ms"])
        exchange.advance(at)
        try:
            _apply(exchange, action, done, at)
        except ExchangeError as exc:
            refused.append(
                ActionRefused(index=done, action=action, at_ms=at, status=exc.status, code=exc.code, message=exc.message)
            )
        done += 1
    return done, tuple(refused)


def _apply(exchange: Exchange, action: Mapping[str, Any], index: int, at: int) -> None:
    kind = action["do"]
    if kind == "place":
        _place(exchange, action, action.get("client_order_id", f"action-{index:04d}"), at)
    elif kind == "cancel_all":
        exchange.cancel_all(action["user_id"], at)
    elif kind == "close":
        exchange.close_market(action["ticker"], at)
    elif kind == "determine":
        exchange.determine_market(action["ticker"], action["result"], at)
    else:  # "settle"; check_actions let no other kind through
        exchange.settle_market(action["ticker"], at)
