"""docs/rest.md runs: every python block, in order, against the local exchange on loopback.

The blocks share one namespace, which starts with ``client``: a blocking `kalshi_sync.KalshiClient`
signed in as the ready-made account of a local exchange served on 127.0.0.1 from a background
thread (`kalshi_anyio.sim.serve_exchange_in_thread`). A block whose first line is
``# not run: <reason>`` is only compiled, and at most a quarter of the blocks may be.

A ``try`` statement in the guide shows an exception. Before a block runs, each of its ``try``
statements without an ``else`` gets one that fails, so a block whose promised exception no longer
comes fails here instead of passing quietly. Line numbers in tracebacks are lines of the guide.

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
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

import pytest

from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.rest._sync_base import ClientBase
from kalshi_proto.rest.operation_table import operations
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_sync import KalshiClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "rest.md"
NOT_RUN = "# not run:"

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced python block: its code and the guide line its code starts on."""

    line: int
    code: str

    @property
    def runs(self) -> bool:
        return not self.code.startswith(NOT_RUN)


def python_blocks() -> list[Block]:
    text = DOC.read_text(encoding="utf-8")
    blocks = [
        Block(line=text.count("\n", 0, found.start(1)) + 1, code=found.group(1))
        for found in _FENCE.finditer(text)
    ]
    assert blocks, f"{DOC} has no python blocks"
    return blocks


class _ExpectRaise(ast.NodeTransformer):
    # Gives every `try` with handlers and no `else` an `else` that fails.
    def visit_Try(self, node: ast.Try) -> ast.Try:
        self.generic_visit(node)
        if node.handlers and not node.orelse:
            caught = ", ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
            message = f"docs/rest.md line {node.lineno}: expected {caught}, nothing was raised"
            call = ast.Call(ast.Name("AssertionError", ast.Load()), [ast.Constant(message)], [])
            node.orelse = [ast.copy_location(ast.Raise(exc=call, cause=None), node)]
        return node


def compile_block(block: Block) -> CodeType:
    tree = ast.parse(block.code, filename=str(DOC))
    ast.increment_lineno(tree, block.line - 1)
    tree = ast.fix_missing_locations(_ExpectRaise().visit(tree))
    return compile(tree, str(DOC), "exec")


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
    runnable = [block for block in python_blocks() if block.runs]
    assert runnable
    with (
        serve_exchange_in_thread(host="127.0.0.1") as local,
        KalshiClient(**local.client_options()) as client,
    ):
        assert client.config.base_url.host == "127.0.0.1"
        namespace: dict[str, object] = {"__name__": "docs_rest", "client": client}
        for block in runnable:
            code = compile_block(block)
            try:
                exec(code, namespace)
            except BaseException as exc:
                exc.add_note(f"in the python block at docs/rest.md line {block.line}")
                raise


# ---- the guide's tables against the code -------------------------------------------------


def table(heading: str, first_column: str) -> list[list[str]]:
    """The rows of the table in section ``heading`` whose header starts with ``first_column``."""
    text = DOC.read_text(encoding="utf-8")
    _, found, rest = text.partition(f"\n## {heading}\n")
    assert found, f"docs/rest.md has no section {heading!r}"
    section = rest.split("\n## ", 1)[0]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows and rows[0][0] == first_column:
            break
        else:
            rows = []
    assert rows and rows[0][0] == first_column, f"no table starting {first_column!r} in {heading!r}"
    return rows[2:]  # past the header and the |---| line


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
