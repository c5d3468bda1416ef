"""The merged trade-API spec for tests, and examples built from its schemas.

`load_spec()` applies the 3.34 overlay exactly as ``scripts/generate.py`` does (it calls the
generator's loader). `example(schema)` builds a JSON value that is valid against a schema: every
property (required and optional) filled, enums take their first value, money fields are exact
fixed-point strings, arrays hold one item. Pass ``required_only=True`` for the smallest valid
value. Tests use these both to feed response models and to serve spec-shaped answers.
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT.parent / "shared" / "specs"
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

import generate  # type: ignore[import-not-found, unused-ignore]  # noqa: E402  (scripts/generate.py)

__all__ = ["SPECS", "example", "load_spec", "schema", "schemas"]

_MONEY = {"FixedPointDollars": "0.5600", "FixedPointCount": "10.00"}


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = generate.load_spec(SPECS)
    return spec


def load_spec() -> dict[str, Any]:
    """A fresh copy of the merged spec (openapi.yaml plus the overlay)."""
    return copy.deepcopy(_spec())


def schemas() -> dict[str, Any]:
    """The merged ``components.schemas`` (shared; do not mutate)."""
    return _spec()["components"]["schemas"]  # type: ignore[no-any-return]


def schema(name: str) -> dict[str, Any]:
    """One component schema by name (shared; do not mutate)."""
    return schemas()[name]  # type: ignore[no-any-return]


def example(node: dict[str, Any] | str, *, required_only: bool = False) -> Any:
    """A JSON value valid against ``node`` (a schema dict, or a component schema name)."""
    if isinstance(node, str):
        node = {"$ref": f"#/components/schemas/{node}"}
    return _example(node, required_only, ())


def _example(node: dict[str, Any], required_only: bool, stack: tuple[str, ...]) -> Any:
    ref = node.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in _MONEY:
            return _MONEY[name]
        if name == "PriceLevelDollarsCountFp":
            return ["0.1500", "100.00"]
        if name in stack:  # a recursive schema: stop with the smallest value
            return None
        return _example(schemas()[name], required_only, (*stack, name))
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            value = _example(part, required_only, stack)
            if isinstance(value, dict):
                merged.update(value)
            else:
                return value
        return merged
    if "enum" in node:
        return next(v for v in node["enum"] if v is not None)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        required = set(node.get("required", []))
        out = {}
        for key, prop in (node.get("properties") or {}).items():
            if required_only and key not in required:
                continue
            out[key] = _example(prop, required_only, stack)
        return out
    if kind == "array":
        return [_example(node.get("items", {}), required_only, stack)]
    if kind == "string":
        fmt = node.get("format")
        if fmt == "date-time":
            return "2026-01-02T03:04:05Z"
        if fmt == "uuid":
            return "8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1"
        if fmt == "date":
            return "2026-01-02"
        return "x"
    if kind == "integer":
        return max(1, int(node.get("minimum", 1)))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return None
