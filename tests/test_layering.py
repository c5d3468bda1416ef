"""The core stays pure and the adapters stay apart (STYLE.md section 1).

Walks the AST of every module: `kalshi_proto` imports no I/O, clock, randomness or logging
module and calls no ``open()``, ``os.environ``, ``os.urandom``, ``uuid4()`` or ``datetime.now()``
(``kalshi_proto/environ.py``, the one module that loads keys and environment variables, is the
exception, and only the client-construction modules may import it); the three adapters never
import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "kalshi_proto"
ADAPTERS = ("kalshi_sync", "kalshi_anyio", "kalshi_httpx")
FORBIDDEN_MODULES = {
    "socket", "ssl", "select", "selectors", "asyncio", "trio", "anyio", "httpx",
    "threading", "time", "random", "secrets", "logging", "subprocess", "urllib.request",
}
ENVIRON_MODULE = CORE / "environ.py"
ENVIRON_IMPORTERS = {
    CORE / "rest" / "settings.py",
    CORE / "rest" / "_async_base.py",
    CORE / "rest" / "_sync_base.py",
}


def modules(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def forbidden_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("open", "uuid4", "input"):
                found.append((node.lineno, f"{func.id}()"))
            if isinstance(func, ast.Attribute):
                owner = func.value
                if func.attr in ("now", "utcnow", "today") and isinstance(owner, ast.Name) and owner.id in ("datetime", "date"):
                    found.append((node.lineno, f"{owner.id}.{func.attr}()"))
                if func.attr in ("urandom", "getenv") and isinstance(owner, ast.Name) and owner.id == "os":
                    found.append((node.lineno, f"os.{func.attr}()"))
        if isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append((node.lineno, "os.environ"))
    return found


@pytest.mark.parametrize("path", modules(CORE), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    problems = [
        f"line {line}: imports {name}"
        for line, name in imported_names(tree)
        if name in FORBIDDEN_MODULES or name.split(".")[0] in FORBIDDEN_MODULES
    ]
    if path != ENVIRON_MODULE:
        problems += [f"line {line}: calls {what}" for line, what in forbidden_calls(tree)]
        if path not in ENVIRON_IMPORTERS:
            problems += [
                f"line {line}: imports {name} (only client construction may load keys)"
                for line, name in imported_names(tree)
                if name == "kalshi_proto.environ" or name.startswith("kalshi_proto.environ.")
            ]
    assert not problems, f"{path.relative_to(ROOT)} breaks the sans-I/O rule: {problems}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_do_not_import_each_other(adapter: str) -> None:
    others = {a for a in ADAPTERS if a != adapter}
    problems = []
    for path in modules(ROOT / adapter):
        for line, name in imported_names(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in others:
                problems.append(f"{path.relative_to(ROOT)} line {line}: imports {name}")
    assert not problems, problems


def test_the_checks_can_fail() -> None:
    bad = ast.parse("import socket\nfrom time import monotonic\nopen('x')\nimport os\nos.environ['A']\n")
    names = [name for _, name in imported_names(bad)]
    assert "socket" in names and "time" in names
    assert {what for _, what in forbidden_calls(bad)} == {"open()", "os.environ"}
