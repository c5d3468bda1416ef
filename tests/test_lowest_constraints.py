"""scripts/lowest_constraints.py: the floors `.ci/lowest` installs, read from pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "lowest_constraints.py"

if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

import lowest_constraints as lc  # noqa: E402


def _project(dependencies: list[str], extras: dict[str, list[str]]) -> dict[str, object]:
    return {"project": {"name": "kalshi-sansio", "dependencies": dependencies, "optional-dependencies": extras}}


def test_every_floor_becomes_a_pin_and_the_tool_extra_is_left_out() -> None:
    pyproject = _project(
        ["pydantic>=2.7,<3", "cryptography>=42", "anyio[trio] >= 4.4 ; python_version >= '3.11'"],
        {
            "trio": ["trio>=0.25"],
            "pandas": ["pandas>=2.1"],
            "test": ["trio>=0.25", "pytest>=8"],
            "dev": ["kalshi-sansio[test]", "mypy>=1.10", "ruff"],
            "all": ["Kalshi_Sansio[trio]"],
        },
    )
    assert lc.constraints(lc.requirements(pyproject, "kalshi-sansio")) == [
        "pydantic==2.7",
        "cryptography==42",
        "anyio==4.4",
        "trio==0.25",
        "pandas==2.1",
        "pytest==8",
        "numpy<2  # pandas 2.1 is built against numpy 1",
    ]


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("ruff", "'ruff' has no '>=' floor"),
        ("h11<1", "'h11<1' has no '>=' floor"),
        ("h11==0.16", "'h11==0.16' has no '>=' floor"),
        ("!bad", "cannot read the requirement '!bad'"),
    ],
)
def test_a_requirement_without_a_floor_is_refused(requirement: str, message: str) -> None:
    with pytest.raises(lc.FloorError) as caught:
        lc.constraints([requirement])
    assert str(caught.value) == message


def test_one_package_with_two_floors_is_refused() -> None:
    with pytest.raises(lc.FloorError) as caught:
        lc.constraints(["trio>=0.25", "Trio>=0.26"])
    assert str(caught.value) == "trio has two floors: 0.25 and 0.26"


def test_the_projects_own_floors() -> None:
    # Every runtime dependency and every extra but dev has a floor, and each gets a pin.
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    pins = {line.split("==")[0] for line in done.stdout.splitlines() if "==" in line}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra != "dev":
            listed += requirements
    names = {lc._normal(lc._REQUIREMENT.match(r)["name"]) for r in listed}  # type: ignore[index]
    assert pins == names
    assert {"pydantic", "cryptography", "h11", "wsproto", "anyio", "httpx"} <= pins
