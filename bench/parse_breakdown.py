"""Where the time of (b) goes: the 1,000-market page parsed in several ways, side by side.

``rest_overhead.py`` times ``markets.list(limit=1000)`` from the facade call to the parsed
page. Nearly all of it is pydantic validating ``GetMarketsResponse`` from the body's bytes. This
script splits that cost, on the same 1.7 MB body, so the gap to the issue's 13.3 ms target can
be judged without a profiler::

    python bench/parse_breakdown.py [--quick]

Rows, each timed in rounds that run every row once (so a busy machine slows them alike):

* ``json.loads`` and ``pydantic_core.from_json``: bytes to plain dicts and lists, no types.
* the SDK's model, ``GetMarketsResponse.model_validate_json``, with the garbage collector on and
  paused (the client pauses it for bodies over 256 KiB; see ``kalshi_proto.rest.call``).
* the same page with the fixed-point money and count fields (``Dollars``, ``Count``) typed
  ``str``, every other field as in the SDK: what the exact ``Decimal`` values cost. Kalshi's
  ``kalshi_python_sync`` 3.34 keeps these fields as strings (``StrictStr``); this SDK does not
  (no float money, and no arithmetic on strings), so the row is for scale only.
* the same page with every ``Market`` field typed ``Any``: what building 1,000 pydantic
  instances costs before any field is converted (no Decimal, no datetime, no enum check). No
  pydantic response model of this shape can be faster.
* freeing a parsed page (``rest_overhead.py`` counts it: each call's result is dropped before
  the clock stops).
* when msgspec is installed (it is not a dependency): the page decoded into msgspec Structs made
  from the same field types, Decimal and datetime included, for scale; and the same Structs
  turned into the SDK's pydantic models without validating them again, the cheapest way to keep
  pydantic response types with msgspec doing the checks.

The garbage collector is paused for every row but the one that says otherwise.
"""

from __future__ import annotations

import argparse
import decimal
import gc
import json
import os
import statistics
import sys
import time
import types
import typing
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fixtures as fx
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, create_model

from kalshi_proto import types as types_
from kalshi_proto.rest.generated import models

TARGET_MS = 40 / 3


def untyped_page() -> type[BaseModel]:
    """``GetMarketsResponse`` with every ``Market`` field typed ``Any`` (same names, same
    required fields, ``extra="allow"``)."""
    fields: dict[str, Any] = {
        name: (Any, ... if info.is_required() else None)
        for name, info in models.Market.model_fields.items()
    }
    config = ConfigDict(extra="allow")
    market = create_model("UntypedMarket", __config__=config, **fields)
    return create_model(
        "UntypedPage", __config__=config, markets=(list[market], ...), cursor=(str | None, None)
    )


def money_as_str_page() -> type[BaseModel]:
    """``GetMarketsResponse`` with every ``Dollars`` and ``Count`` field of ``Market`` typed
    ``str`` (``str | None`` where optional); the rest, ``Number`` fields included, unchanged."""

    def money(annotation: Any, metadata: list[Any]) -> bool:
        # Dollars and Count are Decimal serialised by decimal_to_wire; Number is Decimal too,
        # serialised by number_to_wire (a JSON number on the wire, not a string).
        def to_wire(items: Any) -> bool:
            return any(getattr(item, "func", None) is types_.decimal_to_wire for item in items)

        if annotation is decimal.Decimal:
            return to_wire(metadata)
        return any(
            typing.get_origin(arg) is typing.Annotated
            and typing.get_args(arg)[0] is decimal.Decimal
            and to_wire(arg.__metadata__)
            for arg in typing.get_args(annotation)
        )

    fields: dict[str, Any] = {}
    for name, info in models.Market.model_fields.items():
        annotation: Any = info.annotation
        if money(annotation, info.metadata):
            annotation = str if info.is_required() else str | None
        fields[name] = (annotation, ... if info.is_required() else info.default)
    config = ConfigDict(extra="allow", populate_by_name=True)
    market = create_model("MoneyAsStrMarket", __config__=config, **fields)
    return create_model(
        "MoneyAsStrPage", __config__=config, markets=(list[market], ...), cursor=(str | None, None)
    )


def msgspec_page() -> Callable[[bytes], object] | None:
    """A msgspec decoder for the page, or None when msgspec is not installed."""
    try:
        import msgspec
    except ImportError:
        return None

    made: dict[type[BaseModel], type] = {}

    def convert(annotation: Any) -> Any:
        # Map a pydantic annotation onto one msgspec can decode: models become Structs, an open
        # enum (``Literal[...] | str``) becomes ``str``, the rest is kept.
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return convert(typing.get_args(annotation)[0])
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return struct(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if typing.get_origin(a) is not typing.Literal]
            if len(args) < len(typing.get_args(annotation)) and str not in args:
                args.append(str)
            converted = tuple(convert(a) for a in args)
            return converted[0] if len(converted) == 1 else typing.Union[converted]  # noqa: UP007
        if origin is list:
            return list[convert(typing.get_args(annotation)[0])]  # type: ignore[misc]
        return annotation

    def struct(model: type[BaseModel]) -> type:
        if model not in made:
            fields: list[tuple[Any, ...]] = []
            for name, info in model.model_fields.items():
                kind = convert(info.annotation)
                if info.is_required():
                    fields.append((name, kind))
                else:
                    fields.append((name, kind, None))
            fields.sort(key=lambda field: len(field) == 3)  # required fields first
            made[model] = msgspec.defstruct(model.__name__, fields)
        return made[model]

    decoder: Any = msgspec.json.Decoder(struct(models.GetMarketsResponse))
    decode: Callable[[bytes], object] = decoder.decode
    return decode


def as_pydantic(decode: Callable[[bytes], object]) -> Callable[[bytes], BaseModel]:
    """msgspec's decode, then each Struct turned into the SDK's pydantic model *without*
    validating again (the fastest way to keep pydantic types with msgspec doing the checks):
    the field dict from ``msgspec.structs.asdict`` is set straight into a new instance."""
    import msgspec

    asdict = msgspec.structs.asdict
    setattr_ = object.__setattr__

    def instance(model: type[BaseModel], fields: dict[str, Any]) -> BaseModel:
        made = object.__new__(model)
        setattr_(made, "__dict__", fields)
        setattr_(made, "__pydantic_fields_set__", set(fields))
        setattr_(made, "__pydantic_extra__", {})
        setattr_(made, "__pydantic_private__", None)
        return made

    def market(struct: Any) -> BaseModel:
        fields = asdict(struct)
        ranges, legs = fields["price_ranges"], fields["mve_selected_legs"]
        fields["price_ranges"] = [instance(models.PriceRange, asdict(r)) for r in ranges or ()]
        fields["mve_selected_legs"] = [instance(models.MveSelectedLeg, asdict(g)) for g in legs or ()]
        return instance(models.Market, fields)

    def parse(body: bytes) -> BaseModel:
        page: Any = decode(body)
        markets: list[Any] = [market(struct) for struct in page.markets]
        return models.GetMarketsResponse.model_construct(markets=markets, cursor=page.cursor)

    return parse


def run(quick: bool) -> int:
    responses = fx.build_responses(validate_all=False)
    body = responses.markets
    page_model = models.GetMarketsResponse
    untyped = untyped_page()
    money_as_str = money_as_str_page()
    decode_structs = msgspec_page()

    page = page_model.model_validate_json(body)
    assert len(page.markets) == responses.market_count
    assert isinstance(page.markets[0].yes_bid_dollars, decimal.Decimal)
    assert len(untyped.model_validate_json(body).markets) == responses.market_count  # type: ignore[attr-defined]
    as_str: Any = money_as_str.model_validate_json(body)
    assert as_str.markets[0].yes_bid_dollars == page.markets[0].yes_bid_dollars.to_eng_string()
    assert isinstance(as_str.markets[0].created_time, type(page.markets[0].created_time))

    def gc_on() -> object:
        gc.enable()
        try:
            return page_model.model_validate_json(body)
        finally:
            gc.disable()

    def free() -> float:
        # Only the freeing is timed: the parse happens before the clock starts.
        parsed = page_model.model_validate_json(body)
        start = time.perf_counter_ns()
        del parsed
        return (time.perf_counter_ns() - start) / 1e6

    rows: dict[str, Callable[[], object]] = {
        "json.loads (dicts, no types)": lambda: json.loads(body),
        "pydantic_core.from_json (dicts, no types)": lambda: pydantic_core.from_json(body),
        "GetMarketsResponse, collector on": gc_on,
        "GetMarketsResponse, collector paused (SDK)": lambda: page_model.model_validate_json(body),
        "Dollars and Count fields as str": lambda: money_as_str.model_validate_json(body),
        "every Market field Any (pydantic's floor)": lambda: untyped.model_validate_json(body),
    }
    if decode_structs is not None:
        structs = decode_structs(body)
        assert isinstance(structs.markets[0].yes_bid_dollars, decimal.Decimal)  # type: ignore[attr-defined]
        rows["msgspec Structs (not a dependency)"] = lambda: decode_structs(body)
        hybrid = as_pydantic(decode_structs)
        assert hybrid(body) == page  # the same models, field for field
        rows["msgspec, then pydantic instances unvalidated"] = lambda: hybrid(body)

    rounds = 8 if quick else 40
    samples: dict[str, list[float]] = {name: [] for name in rows}
    samples["freeing a parsed page"] = []
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in rows.items():
                start = time.perf_counter_ns()
                result = fn()
                samples[name].append((time.perf_counter_ns() - start) / 1e6)
                del result
            samples["freeing a parsed page"].append(free())
            gc.collect()
    finally:
        if was_enabled:
            gc.enable()

    print(f"Python {sys.version.split()[0]}, pydantic {pydantic.VERSION}, "
          f"pydantic-core {pydantic_core.__version__}")
    print(f"Body: GetMarketsResponse with {responses.market_count:,} markets, {len(body):,} B; "
          f"{rounds} rounds; target for the whole call {TARGET_MS:.1f} ms\n")
    print(f"   {'what':46s} {'median ms':>10s} {'min ms':>8s}")
    for name, values in samples.items():
        print(f"   {name:46s} {statistics.median(values):10.2f} {min(values):8.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds)")
    return run(parser.parse_args(argv).quick)


if __name__ == "__main__":
    raise SystemExit(main())
