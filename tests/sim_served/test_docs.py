"""docs/sim.md lists exactly what the local exchange models, what it answers with 501, and the
query parameters it accepts without effect; its python blocks run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from kalshi_proto.rest.operation_table import operations
from kalshi_proto.sim.rest import NOT_MODELLED, QUERY_PARAMETERS_WITHOUT_EFFECT
from tests.helpers.docs import python_blocks, run_blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "sim.md"


def test_docs_list_every_operation_once_in_the_right_table() -> None:
    text = DOC.read_text().partition("\n## Operations\n")[2]
    modelled_part, _, unmodelled_part = text.partition("Answered with 501")
    listed_modelled = set(re.findall(r"^\| `(\w+)` \|", modelled_part, re.MULTILINE))
    listed_unmodelled = set(re.findall(r"^\| `(\w+)` \|", unmodelled_part, re.MULTILINE))
    every = {op.operation_id for op in operations()}
    assert listed_unmodelled == set(NOT_MODELLED)
    assert listed_modelled == every - set(NOT_MODELLED)


def test_docs_list_the_query_parameters_accepted_without_effect() -> None:
    section = DOC.read_text().partition("#### Query parameters accepted without effect")[2]
    section = section.partition("\n#")[0]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (.+) \|$", section, re.MULTILINE)
    assert {(op, name): why for op, name, why in rows} == dict(QUERY_PARAMETERS_WITHOUT_EFFECT)
    assert len(rows) == len(QUERY_PARAMETERS_WITHOUT_EFFECT)


def test_the_python_blocks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith("KALSHI_"):
            monkeypatch.delenv(name)
    blocks = python_blocks(DOC)
    assert all(block.runs for block in blocks)
    run_blocks(blocks, {"__name__": "docs_sim"})
