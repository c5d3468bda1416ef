"""docs/troubleshooting.md names errors that exist and links to sections of docs/rest.md that
exist."""

from __future__ import annotations

import builtins
import re

from kalshi_proto import errors
from tests.helpers.docs import DOCS, table_rows

DOC = DOCS / "troubleshooting.md"


def _anchor(heading: str) -> str:
    # A markdown heading's anchor as GitHub makes it: lower case, punctuation out, spaces to -.
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_every_error_the_table_names_exists() -> None:
    rows = table_rows(DOC.read_text(), "What you see")
    assert len(rows) >= 15
    for first, *_ in rows:
        name = re.match(r"`(\w+)`", first)
        assert name is not None, first
        error = getattr(errors, name[1], None) or getattr(builtins, name[1], None)
        assert isinstance(error, type) and issubclass(error, Exception), first


def test_every_link_to_the_rest_guide_names_one_of_its_sections() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", (DOCS / "rest.md").read_text(), re.MULTILINE)
    anchors = {_anchor(heading) for heading in headings}
    links = re.findall(r"\(rest\.md#([a-z0-9-]+)\)", DOC.read_text())
    assert len(links) >= 10
    assert sorted(set(links) - anchors) == []
