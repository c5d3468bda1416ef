#!/usr/bin/env python3
"""Print pip constraints that hold every direct dependency at its declared floor.

``pyproject.toml`` promises, for example, ``pydantic>=2.7``: this prints ``pydantic==2.7``, for
the runtime dependencies and every extra (the ``dev`` extra's tools excepted: they check the
code, they do not run it). ``.ci/lowest`` installs the project with these constraints and runs
the tests, so a floor that no longer works is found before a user on that version finds it.

Every direct dependency must have a ``>=`` floor: one without is an error, since nothing could
then say which oldest version the tests stand for. Usage:
``python scripts/lowest_constraints.py [--pyproject FILE] > constraints.txt``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Extras whose packages are tools for working on the project, left at their newest.
TOOL_EXTRAS = frozenset({"dev"})

#: Pins a floor needs that its own package does not declare, with the reason.
COMPANIONS: dict[str, tuple[str, str]] = {
    # pandas before 2.2.2 is built against numpy 1 and fails on import under numpy 2, yet
    # does not cap numpy: pip would pair pandas 2.1 with the newest numpy.
    "pandas": ("numpy<2", "pandas 2.1 is built against numpy 1"),
}

_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?P<spec>[^;]*)(?:;.*)?$"
)
_FLOOR = re.compile(r">=\s*(?P<version>[^,\s]+)")


class FloorError(ValueError):
    """A direct dependency without a ``>=`` floor."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict[str, object], project_name: str) -> Iterator[str]:
    """The runtime and extra requirements, without the project itself and the tool extras."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    yield from project.get("dependencies", [])
    for extra, listed in project.get("optional-dependencies", {}).items():
        if extra in TOOL_EXTRAS:
            continue
        for requirement in listed:
            match = _REQUIREMENT.match(requirement.strip())
            if match and _normal(match["name"]) == _normal(project_name):
                continue  # an extra that pulls in another extra of the project
            yield requirement


def constraints(listed: Iterable[str]) -> list[str]:
    """``name==floor`` for each requirement, one per package, then the companions' pins.

    Raises:
        FloorError: a requirement has no ``>=`` floor, or two give one package two floors.
    """
    floors: dict[str, str] = {}
    lines: list[str] = []
    for requirement in listed:
        match = _REQUIREMENT.match(requirement.strip())
        if match is None:
            raise FloorError(f"cannot read the requirement {requirement!r}")
        floor = _FLOOR.search(match["spec"])
        if floor is None:
            raise FloorError(f"{requirement!r} has no '>=' floor")
        name = _normal(match["name"])
        if name in floors:
            if floors[name] != floor["version"]:
                raise FloorError(
                    f"{name} has two floors: {floors[name]} and {floor['version']}"
                )
            continue
        floors[name] = floor["version"]
        lines.append(f"{name}=={floor['version']}")
    for name in floors:
        if name in COMPANIONS:
            pin, reason = COMPANIONS[name]
            lines.append(f"{pin}  # {reason}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    pyproject = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
    name = pyproject["project"]["name"]
    try:
        lines = constraints(requirements(pyproject, name))
    except FloorError as exc:
        print(f"{args.pyproject}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
