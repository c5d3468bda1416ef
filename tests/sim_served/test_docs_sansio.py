"""docs/sansio.md runs: every python block, in order, in one namespace (the blocks that need a
server start a local exchange on loopback themselves), and its tables name what the code has."""

from __future__ import annotations

import importlib
import os
import re
import typing
from pathlib import Path

import pytest

from kalshi_proto.rest.client import Step
from tests.helpers.docs import DOCS, Block, python_blocks, run_blocks, table_rows

DOC = DOCS / "sansio.md"


def test_every_block_runs_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith("KALSHI_"):
            monkeypatch.delenv(name)
    blocks = python_blocks(DOC)
    assert all(block.runs for block in blocks), "every block of this guide runs"
    run_blocks(blocks, {"__name__": "docs_sansio"})


def _table(first_column: str) -> list[list[str]]:
    return table_rows(DOC.read_text(encoding="utf-8"), first_column)


def test_the_pieces_table_names_what_its_modules_have() -> None:
    named = 0
    for names, module_name, _ in _table("piece"):
        module = importlib.import_module(module_name.strip("`"))
        for name in re.findall(r"`(\w+)`", names):
            assert hasattr(module, name), f"{module.__name__} has no {name}"
            named += 1
    assert named >= 5


def test_the_steps_table_lists_every_step() -> None:
    listed = {row[0].strip("`").split("(")[0] for row in _table("step")}
    assert listed == {step.__name__ for step in typing.get_args(Step)}


def test_a_try_whose_exception_no_longer_comes_fails_its_block(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    # A try inside a function is the example's own handling, left as it is.
    code = (
        "def parse(text):\n"
        "    try:\n"
        "        return int(text)\n"
        "    except ValueError:\n"
        "        return None\n"
        "\n"
        "try:\n"
        "    parse('x')\n"
        "except ValueError:\n"
        "    pass\n"
    )
    doc.write_text(f"text\n\n```python\n{code}```\n", encoding="utf-8")
    blocks = python_blocks(doc)
    assert blocks == [Block(doc=doc, line=4, code=code)]
    with pytest.raises(AssertionError) as info:
        run_blocks(blocks, {})
    assert str(info.value) == "docs/guide.md line 10: expected ValueError, nothing was raised"
    assert info.value.__notes__ == ["in the python block at docs/guide.md line 4"]
