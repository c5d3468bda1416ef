"""REST list results as rows of dicts, pandas data frames or polars data frames, with exact money.

Every function takes pydantic models of one class (the items of a `Page`, or what a
``list_all`` iterator yields) and makes one row per model and one column per field:

* Columns are named by the Python attribute names (``item.<name>``), not the wire names. The
  generated models declare no aliases, so for them both are the same; for your own models with
  ``Field(alias=...)`` the attribute name wins.
* Column order is the model's declared fields in order, then the keys the server sent beyond
  them (response models keep unknown keys in ``model_extra``), in the order they first appear.
* Money is never ``float``. `to_records` and `to_pandas` keep each `decimal.Decimal` as it is
  (``Decimal("0.0100")`` stays ``Decimal("0.0100")``); `to_polars` builds a
  ``pl.Decimal(precision=38, scale=s)`` column whose scale ``s`` is the largest scale in that
  column, so every value keeps its exact value (``0.0100`` reads back as ``0.010000`` beside a
  six-place value: equal, with the column's scale).

pandas and polars are imported inside the functions, so importing this module needs neither.
Install them with the ``pandas`` and ``polars`` extras.

The dtypes come from the field annotations and from the values together: an annotation types a
column whose values are all None (and the columns of an empty input when you pass ``model=``),
the values give the decimal scales and the fields of keys no annotation names. In pandas, a
``bool`` column with a None in it is the nullable ``boolean`` dtype, an ``int`` one ``Int64``,
and a ``float`` column is always ``float64`` (None is NaN).
"""

from __future__ import annotations

import decimal
import types
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeAlias,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import BaseModel

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["POLARS_PRECISION", "to_pandas", "to_polars", "to_records"]

#: The precision of every polars ``Decimal`` column `to_polars` builds (128-bit decimals).
POLARS_PRECISION = 38


def to_records(
    items: Iterable[BaseModel], *, model: type[BaseModel] | None = None
) -> list[dict[str, object]]:
    """One dict per model, from ``model_dump(mode="python")``, with the same keys in the same order.

    Values are what the model holds: `decimal.Decimal` money, timezone-aware `datetime.datetime`,
    nested models as dicts and lists of models as lists of dicts. A key the server sent for some
    items only is None in the others.

    Args:
        items: pydantic models, all of one class.
        model: that class; checked against the items when there are any.

    Returns:
        The rows, declared fields first, then the extra keys in first-seen order.

    Raises:
        TypeError: an item is not a pydantic model, the items are of two classes, or ``model``
            is not their class.
    """
    table = _Table.build(items, model, "to_records")
    return [{name: dump.get(name) for name in table.names} for dump in table.dumps]


def to_pandas(
    items: Iterable[BaseModel], *, model: type[BaseModel] | None = None
) -> pandas.DataFrame:
    """A pandas ``DataFrame`` with one row per model.

    Column dtypes:

    * money (`decimal.Decimal`): ``object``, holding the `Decimal` values (None stays None);
    * `datetime.datetime`: ``datetime64[us, UTC]``, None as ``NaT`` (a naive value, which the
      server sends only without an offset, is read as UTC);
    * ``int``: ``int64``, or the nullable ``Int64`` (None as ``<NA>``) when a value is None or
      there are no values, never ``float64``;
    * ``str``, ``bool`` and ``float``: what pandas infers;
    * nested models, lists and dicts: ``object``, holding the dicts and lists of `to_records`.

    Args:
        items: pydantic models, all of one class.
        model: that class; with no items, the frame still has its columns.

    Raises:
        ModuleNotFoundError: pandas is not installed.
        TypeError: as `to_records`.
        ValueError: a `Decimal` is NaN or infinite.
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise _missing("to_pandas", "pandas") from exc
    text_dtype = str if int(pd.__version__.split(".")[0]) >= 3 else object
    table = _Table.build(items, model, "to_pandas")
    frame: dict[str, pandas.Series[Any]] = {}
    for name, shape in table.shapes().items():
        values = table.column(name)
        has_none = any(value is None for value in values)
        if shape is datetime:
            frame[name] = pd.Series(values, dtype=pd.DatetimeTZDtype(unit="us", tz="UTC"))
        elif shape is int:
            frame[name] = pd.Series(values, dtype="Int64" if has_none or not values else "int64")
        elif shape is bool:
            # None needs pandas' nullable boolean; plain bool would read it as False.
            frame[name] = pd.Series(values, dtype="boolean" if has_none or not values else "bool")
        elif shape is float:
            frame[name] = pd.Series(values, dtype="float64")
        elif shape is str:
            # The annotation types a column of None only (or no rows), as the values would:
            # pandas 3 infers its string dtype, pandas 2 object.
            known = any(value is not None for value in values)
            frame[name] = pd.Series(values, dtype=None if known else text_dtype)
        else:  # Decimal, nested, mixed, or nothing known: the Python objects as they are
            frame[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(frame)


def to_polars(
    items: Iterable[BaseModel], *, model: type[BaseModel] | None = None
) -> polars.DataFrame:
    """A polars ``DataFrame`` with one row per model, built with explicit dtypes.

    Column dtypes:

    * money (`decimal.Decimal`): ``pl.Decimal(38, s)``, ``s`` the largest scale in the column
      (0 for a column of None only), also inside lists and structs; an order book level,
      ``tuple[Dollars, Count]``, becomes one ``List(Decimal(38, s))`` with one scale for both;
    * `datetime.datetime`: ``pl.Datetime("us", "UTC")`` (a naive value is read as UTC);
    * ``int`` ``Int64``, ``bool`` ``Boolean``, ``float`` ``Float64``, ``str`` ``String``;
    * a nested model or dict: ``Struct`` of its keys; a list: ``List`` of its items, so a list of
      nested models is ``List(Struct)``;
    * a column holding an empty dict (``{}``, a struct with no fields), at any depth:
      ``pl.Object``;
    * a column whose values disagree (an extra key holding ``1`` in one row and ``"a"`` in the
      next, at any depth): ``pl.Object``, holding the Python values;
    * a column with nothing but None and no annotation: ``pl.Null``.

    Args:
        items: pydantic models, all of one class.
        model: that class; with no items, the frame still has its columns.

    Raises:
        ModuleNotFoundError: polars is not installed.
        TypeError: as `to_records`.
        ValueError: a `Decimal` is NaN or infinite, or a decimal column needs more than 38
            digits (the most digits before the point plus the largest scale).
    """
    try:
        import polars as pl
    except ImportError as exc:
        raise _missing("to_polars", "polars") from exc
    table = _Table.build(items, model, "to_polars")
    shapes = table.shapes()
    schema = {
        name: _polars_dtype(shape, name)
        for name, shape in shapes.items()
        if not _holds_object(shape)
    }
    for name in schema:
        shape = shapes[name]
        if isinstance(shape, _List | _Struct) and _has_decimal(shape):
            # Older polars refuses decimals of another scale inside a list or struct.
            for dump in table.dumps:
                dump[name] = _rescaled(dump.get(name), shape)
    # polars reads the rows in one go (much faster than a Series per column for lists of
    # structs); an Object column cannot be read that way and is added on its own.
    frame = pl.from_dicts(table.dumps, schema=schema, strict=True) if schema else None
    columns = []
    for name in shapes:
        if name in schema:
            assert frame is not None
            columns.append(frame.get_column(name))
        else:
            columns.append(pl.Series(name, table.column(name), dtype=pl.Object))
    return pl.DataFrame(columns)


def _missing(caller: str, library: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{caller} needs {library}: pip install 'kalshi-sansio[{library}]'", name=library
    )


@dataclass(frozen=True, slots=True)
class _Table:
    # The checked items as dumps, and the column names in order.
    model: type[BaseModel] | None
    names: list[str]
    dumps: list[dict[str, Any]]

    @classmethod
    def build(
        cls, items: Iterable[BaseModel], model: type[BaseModel] | None, caller: str
    ) -> _Table:
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{caller}: model must be a pydantic model class, got {model!r}")
        if isinstance(items, BaseModel):  # iterating a model would give its (field, value) pairs
            raise TypeError(
                f"{caller} takes an iterable of models (a Page, a list, list_all(...)), got one "
                f"{type(items).__name__}; for a single row, pass a list of one"
            )
        if not isinstance(items, Iterable):
            hint = ""
            if isinstance(items, AsyncIterable):
                hint = f"; collect an async iterator first: {caller}([m async for m in ...])"
            raise TypeError(
                f"{caller} takes an iterable of models (a Page, a list, list_all(...)), got "
                f"{type(items).__name__}{hint}"
            )
        rows = list(items)
        found: type[BaseModel] | None = None
        for row in rows:
            if not isinstance(row, BaseModel):
                raise TypeError(f"{caller} takes pydantic models, got {type(row).__name__}")
            if found is None:
                found = type(row)
            elif type(row) is not found:
                raise TypeError(
                    f"{caller} takes models of one class, got {found.__name__} and "
                    f"{type(row).__name__}"
                )
        if model is not None and found is not None and found is not model:
            raise TypeError(
                f"{caller}: model={model.__name__}, but the items are {found.__name__}"
            )
        model = model or found
        dumps = [row.model_dump(mode="python") for row in rows]
        names = list(model.model_fields) if model is not None else []
        seen = set(names)
        for dump in dumps:
            for key in dump:
                if key not in seen:
                    seen.add(key)
                    names.append(key)
        return cls(model=model, names=names, dumps=dumps)

    def column(self, name: str) -> list[Any]:
        return [dump.get(name) for dump in self.dumps]

    def shapes(self) -> dict[str, _Shape]:
        shapes: dict[str, _Shape] = {}
        if self.model is None:  # no items and no model: no columns
            return shapes
        fields = self.model.model_fields
        for name in self.names:
            field = fields.get(name)
            shape = _hint(field.annotation, (self.model,)) if field is not None else None
            try:
                if isinstance(shape, _Dec):
                    shape = _decimal_shape(self.column(name))
                elif not _settled(shape):
                    for dump in self.dumps:
                        shape = _merge(shape, _shape_of(dump.get(name)))
            except ValueError as exc:
                raise ValueError(f"column {name!r}: {exc}") from None
            shapes[name] = shape
        return shapes


@dataclass(frozen=True, slots=True)
class _Dec:
    # Decimals: the most digits seen before the point, and the largest scale.
    whole: int
    scale: int


@dataclass(frozen=True, slots=True)
class _List:
    item: _Shape


@dataclass(frozen=True, slots=True)
class _Struct:
    fields: tuple[tuple[str, _Shape], ...]


# What a column (or a part of one) holds: None when nothing is known yet (only None seen), one
# of the scalar types, `object` when values disagree or are of a type no frame column models.
_Shape: TypeAlias = _Dec | _List | _Struct | type | None

_SCALARS = (bool, int, float, str, datetime)


def _shape_of(value: object) -> _Shape:
    if value is None:
        return None
    kind = type(value)
    if kind is Decimal:
        assert isinstance(value, Decimal)
        return _decimal_shape([value])
    if kind in _SCALARS:
        return kind
    if isinstance(value, dict) and all(type(key) is str for key in value):
        return _Struct(tuple((key, _shape_of(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        shape: _Shape = None
        for item in value:
            shape = _merge(shape, _shape_of(item))
        return _List(shape)
    return object


def _decimal_shape(values: list[Any]) -> _Dec:
    # The widest of some Decimals (None skipped): digits before the point and after. A column the
    # annotation types as Decimal goes through here in one loop, not a shape per value, since
    # money columns are most columns.
    whole = scale = 0
    for value in values:
        if value is None:
            continue
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        _, digits, exponent = value.as_tuple()
        whole = max(whole, len(digits) + exponent)
        scale = max(scale, -exponent)
    return _Dec(whole=whole, scale=scale)


def _settled(shape: _Shape) -> bool:
    # True when an annotation's shape needs nothing from the values (which were validated
    # against it): a scalar, or a list of them. A decimal needs its scale; a nested model may
    # hold extra keys, as response models do, so a struct is read from the values too.
    if isinstance(shape, _List):
        return _settled(shape.item)
    return shape is not None and not isinstance(shape, _Dec | _Struct)


def _merge(a: _Shape, b: _Shape) -> _Shape:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, _Dec) and isinstance(b, _Dec):
        return _Dec(whole=max(a.whole, b.whole), scale=max(a.scale, b.scale))
    if isinstance(a, _List) and isinstance(b, _List):
        return _List(_merge(a.item, b.item))
    if isinstance(a, _Struct) and isinstance(b, _Struct):
        fields = dict(a.fields)
        for key, shape in b.fields:
            fields[key] = _merge(fields.get(key), shape)
        return _Struct(tuple(fields.items()))
    return object


def _hint(annotation: Any, models: tuple[type[BaseModel], ...]) -> _Shape:
    # The shape a field's annotation promises, with decimal scales left at 0 for the values to
    # raise; None where the annotation says nothing a column can use (Any, dict[str, Any]).
    # ``models`` holds the models being expanded, so a recursive model stops.
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _hint(args[0], models)
    shape: _Shape = None
    if origin is Union or origin is types.UnionType:
        for arg in args:
            shape = _merge(shape, _hint(arg, models))
        return shape
    if origin is Literal:
        for arg in args:
            shape = _merge(shape, _shape_of(arg))
        return shape
    if origin is list or origin is tuple:
        for arg in args:
            if arg is not Ellipsis:
                shape = _merge(shape, _hint(arg, models))
        return _List(shape)
    if annotation is Decimal:
        return _Dec(whole=0, scale=0)
    if annotation in _SCALARS:
        return cast(type, annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in models:
            return None
        inner = (*models, annotation)
        fields = annotation.model_fields.items()
        return _Struct(tuple((name, _hint(field.annotation, inner)) for name, field in fields))
    return None


def _has_decimal(shape: _Shape) -> bool:
    if isinstance(shape, _List):
        return _has_decimal(shape.item)
    if isinstance(shape, _Struct):
        return any(_has_decimal(part) for _, part in shape.fields)
    return isinstance(shape, _Dec)


#: Wide enough for any value a polars Decimal column holds, so `Decimal.quantize` never fails.
_WIDE = decimal.Context(prec=2 * POLARS_PRECISION)


def _rescaled(value: Any, shape: _Shape) -> Any:
    # ``value`` with every decimal brought to its column's scale: exact, the scale being the
    # largest among the values (and their digits checked against the precision beforehand).
    if value is None:
        return None
    if isinstance(shape, _Dec):
        return value.quantize(Decimal(1).scaleb(-shape.scale), context=_WIDE)
    if isinstance(shape, _List):
        return [_rescaled(item, shape.item) for item in value]
    if isinstance(shape, _Struct):
        parts = dict(shape.fields)
        return {key: _rescaled(item, parts.get(key)) for key, item in value.items()}
    return value


def _holds_object(shape: _Shape) -> bool:
    # polars puts Object columns at the top only, never in a List or Struct. A struct with no
    # fields (an empty dict) is one too: polars 1.0 cannot build that column (ShapeError).
    if isinstance(shape, _List):
        return _holds_object(shape.item)
    if isinstance(shape, _Struct):
        return not shape.fields or any(_holds_object(field) for _, field in shape.fields)
    return shape is object


def _polars_dtype(shape: _Shape, path: str) -> polars.DataType:
    import polars as pl

    if shape is None:
        return pl.Null()
    if isinstance(shape, _Dec):
        digits = shape.whole + shape.scale
        if digits > POLARS_PRECISION:
            raise ValueError(
                f"column {path!r} needs {digits} digits ({shape.whole} before the point, "
                f"{shape.scale} after); a polars Decimal holds {POLARS_PRECISION}"
            )
        return pl.Decimal(POLARS_PRECISION, shape.scale)
    if isinstance(shape, _List):
        return pl.List(_polars_dtype(shape.item, f"{path}[]"))
    if isinstance(shape, _Struct):
        return pl.Struct({key: _polars_dtype(part, f"{path}.{key}") for key, part in shape.fields})
    scalars: dict[type, polars.DataType] = {
        bool: pl.Boolean(),
        int: pl.Int64(),
        float: pl.Float64(),
        str: pl.String(),
        datetime: pl.Datetime("us", "UTC"),
    }
    return scalars[shape]
