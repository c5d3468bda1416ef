"""Run the python blocks of a guide in docs/: find them, and compile them so that they can fail.

A block whose first line is ``# not run: <reason>`` is only compiled. A ``try`` statement in a
guide shows an exception: before a block runs, each of its ``try`` statements without an
``else``, outside functions and classes, gets one that fails, so a block whose promised
exception no longer comes fails instead of passing quietly. Line numbers in tracebacks are lines
of the guide.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOT_RUN = "# not run:"

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced python block: the guide, its code and the line its code starts on."""

    doc: Path
    line: int
    code: str

    @property
    def runs(self) -> bool:
        return not self.code.startswith(NOT_RUN)

    @property
    def where(self) -> str:
        return f"docs/{self.doc.name} line {self.line}"


def python_blocks(doc: Path) -> list[Block]:
    """Every python block of ``doc``, in order."""
    text = doc.read_text(encoding="utf-8")
    blocks = [
        Block(doc=doc, line=text.count("\n", 0, found.start(1)) + 1, code=found.group(1))
        for found in _FENCE.finditer(text)
    ]
    assert blocks, f"{doc} has no python blocks"
    return blocks


class _ExpectRaise(ast.NodeTransformer):
    # Gives every `try` with handlers and no `else` an `else` that fails; not inside a function
    # or a class, whose `try` statements are the example's own error handling.
    def __init__(self, doc: Path) -> None:
        self.doc = doc

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AsyncFunctionDef:
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        return node

    def visit_Try(self, node: ast.Try) -> ast.Try:
        self.generic_visit(node)
        if node.handlers and not node.orelse:
            caught = ", ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
            message = (
                f"docs/{self.doc.name} line {node.lineno}: expected {caught}, nothing was raised"
            )
            call = ast.Call(ast.Name("AssertionError", ast.Load()), [ast.Constant(message)], [])
            node.orelse = [ast.copy_location(ast.Raise(exc=call, cause=None), node)]
        return node


def compile_block(block: Block) -> CodeType:
    """The block's code, with its guide's line numbers and a failing ``else`` on each ``try``."""
    tree = ast.parse(block.code, filename=str(block.doc))
    ast.increment_lineno(tree, block.line - 1)
    tree = ast.fix_missing_locations(_ExpectRaise(block.doc).visit(tree))
    return compile(tree, str(block.doc), "exec")


def run_blocks(blocks: list[Block], namespace: dict[str, object]) -> None:
    """Run the blocks that run, in order, in one namespace; a failure names its block."""
    runnable = [block for block in blocks if block.runs]
    assert runnable
    for block in runnable:
        code = compile_block(block)
        try:
            exec(code, namespace)
        except BaseException as exc:
            exc.add_note(f"in the python block at {block.where}")
            raise


def table_rows(text: str, first_column: str) -> list[list[str]]:
    """The rows of the first markdown table in ``text`` whose header starts with
    ``first_column``, past the header and the ``|---|`` line, as lists of stripped cells."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows and rows[0][0] == first_column:
            break
        else:
            rows = []
    assert rows and rows[0][0] == first_column, f"no table starting {first_column!r}"
    return rows[2:]
