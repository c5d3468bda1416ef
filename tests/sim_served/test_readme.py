"""The README's python examples run, in order, against the local exchange on loopback.

They are written for the real API (``demo=True``, a key file, ``from_env()``). Here every client
class is replaced by a subclass that keeps the example's other arguments but talks to a local
exchange served from a background thread, signed as its ready-made account; a client given its
own loopback ``base_url`` (the README's local-exchange example) is left as it is. An
``httpx.Client`` the example hands over is dropped too: it names a proxy that does not exist.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_anyio.sim import serve_exchange_in_thread
from tests.helpers.docs import python_blocks

README = Path(__file__).resolve().parents[2] / "README.md"
_KEY_AND_PLACE = ("key_id", "private_key", "private_key_path", "passphrase", "credentials", "demo")


def _local(cls: type[Any], options: dict[str, Any]) -> type[Any]:
    # A subclass of a client class that talks to the local exchange unless told a loopback URL.
    def __init__(self: Any, **kwargs: Any) -> None:
        base_url = kwargs.get("base_url")
        if base_url is None or "127.0.0.1" not in base_url:
            kwargs = {k: v for k, v in kwargs.items() if k not in _KEY_AND_PLACE}
            kwargs.pop("http_client", None)
            kwargs.update(options)
        cls.__init__(self, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__})


@pytest.fixture
def local_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith("KALSHI_"):
            monkeypatch.delenv(name)
    with serve_exchange_in_thread(host="127.0.0.1") as local:
        options = local.client_options()
        for module, name in [
            (kalshi_sync, "KalshiClient"),
            (kalshi_anyio, "AsyncKalshiClient"),
            (kalshi_httpx, "KalshiClient"),
            (kalshi_httpx, "AsyncKalshiClient"),
        ]:
            monkeypatch.setattr(module, name, _local(getattr(module, name), options))
        yield


def test_the_readme_examples_run_against_the_local_exchange(local_clients: None) -> None:
    blocks = python_blocks(README)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in blocks:
        tree = ast.parse(block.code)
        ast.increment_lineno(tree, block.line - 1)
        try:
            exec(compile(tree, str(README), "exec"), namespace)
        except BaseException as exc:
            exc.add_note(f"in the python block at README.md line {block.line}")
            raise
    client = namespace["client"]  # the data-frame example's client is the httpx example's
    assert isinstance(client, kalshi_httpx.KalshiClient)
    assert len(namespace["everything"]) == len(namespace["rows"]) == 12
    client.close()
