"""Scenarios shipped with the local exchange. ``SCENARIOS`` maps a name to a function returning it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kalshi_proto.sim.scenarios.default import default_scenario

__all__ = ["SCENARIOS", "default_scenario"]

SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {"default": default_scenario}
