"""docs/rest.md runs: every python block, in order, against the local exchange on loopback.

The blocks share one namespace, which starts with ``client``: a blocking `kalshi_sync.KalshiClient`
signed in as the ready-made account of a local exchange served on 127.0.0.1 from a background
thread (`kalshi_anyio.sim.serve_exchange_in_thread`). A block whose first line is
``# not run: <reason>`` is only compiled, and at most a quarter of the blocks may be.

A ``try`` statement in the guide shows an exception: one that no longer comes fails the block
(`tests.helpers.docs`).

The tables of the guide are checked against the code: the facade table lists exactly the
operations' facade names, the constructor table the constructor's arguments, the retry table the
fields and defaults of `RetryPolicy`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re

import pytest

from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.rest._sync_base import ClientBase
from kalshi_proto.rest.operation_table import operations
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_sync import KalshiClient
from tests.helpers import docs
from tests.helpers.docs import DOCS, NOT_RUN, Block, compile_block, run_blocks, table_rows

DOC = DOCS / "rest.md"


def python_blocks() -> list[Block]:
    return docs.python_blocks(DOC)


def test_the_guide_has_python_blocks_and_runs_at_least_three_quarters() -> None:
    blocks = python_blocks()
    not_run = [block.line for block in blocks if not block.runs]
    assert len(not_run) * 4 <= len(blocks), f"too many blocks not run, at lines {not_run}"


def test_blocks_not_run_give_a_reason_and_compile() -> None:
    for block in python_blocks():
        if block.runs:
            continue
        first = block.code.splitlines()[0]
        assert first.removeprefix(NOT_RUN).strip(), f"line {block.line}: say why it is not run"
        compile_block(block)


def test_every_block_runs_in_order_against_the_local_exchange(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy or a key in the environment would change what the examples do.
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith("KALSHI_"):
            monkeypatch.delenv(name)
    with (
        serve_exchange_in_thread(host="127.0.0.1") as local,
        KalshiClient(**local.client_options()) as client,
    ):
        assert client.config.base_url.host == "127.0.0.1"
        run_blocks(python_blocks(), {"__name__": "docs_rest", "client": client})


# ---- the guide's tables against the code -------------------------------------------------


def table(heading: str, first_column: str) -> list[list[str]]:
    """The rows of the table in section ``heading`` whose header starts with ``first_column``."""
    text = DOC.read_text(encoding="utf-8")
    _, found, rest = text.partition(f"\n## {heading}\n")
    assert found, f"docs/rest.md has no section {heading!r}"
    return table_rows(rest.split("\n## ", 1)[0], first_column)


def test_the_facade_table_names_every_group_and_method_of_the_client() -> None:
    client = KalshiClient(base_url="http://127.0.0.1:9/trade-api/v2")  # sends nothing
    listed: set[str] = set()
    paginated: set[str] = set()
    for group, methods in table("The facade", "group"):
        name = group.strip("`")
        assert hasattr(client, name), f"the guide names a group {name!r} the client lacks"
        resource = getattr(client, name)
        for method, star in re.findall(r"`(\w+)`(\\\*)?", methods):
            assert callable(getattr(resource, method, None)), f"client.{name}.{method}"
            listed.add(f"{name}.{method}")
            if star:
                assert callable(getattr(resource, f"{method}_all", None)), f"{name}.{method}_all"
                paginated.add(f"{name}.{method}")
    every = list(operations())
    assert listed == {op.facade for op in every}
    assert paginated == {op.facade for op in every if op.pagination is not None}


def test_the_constructor_table_lists_the_arguments_every_client_takes() -> None:
    listed = [row[0].strip("`") for row in table("Clients and adapters", "argument")]
    taken = [name for name in inspect.signature(ClientBase.__init__).parameters if name != "self"]
    assert listed == taken


def test_the_retry_table_lists_the_fields_and_defaults_of_retry_policy() -> None:
    rows = {row[0].strip("`"): row[1] for row in table("Retries and timeouts", "field")}
    policy = RetryPolicy()
    assert list(rows) == [field.name for field in dataclasses.fields(RetryPolicy)]
    for name, default in rows.items():
        value = getattr(policy, name)
        if isinstance(value, frozenset):
            assert {item.strip("` ") for item in default.split(",")} == {str(v) for v in value}
        else:
            assert ast.literal_eval(default.strip("`")) == value, name
