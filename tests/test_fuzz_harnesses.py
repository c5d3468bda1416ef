"""The fuzz harnesses still run, and their invariants hold on their seeds and on a few hundred
seeded mutations of them (the long runs are ``python fuzz/<harness>.py``)."""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import pytest

from fuzz import (
    _runner,
    http_request,
    http_response,
    key_pem,
    proxy_answer,
    response_parse,
    socks_answer,
)

HARNESSES = [http_response, http_request, response_parse, key_pem, proxy_answer, socks_answer]
#: What each harness drives: replaced by a broken version, the harness's check must fail.
TARGETS = {
    http_response: "kalshi_proto.rest.http11.Http11Connection.receive_data",
    http_request: "kalshi_proto.sim.http.HttpServerConnection.receive_data",
    response_parse: "kalshi_proto.rest.call.Call.parse",
    key_pem: "kalshi_proto.auth.Signer.from_pem",
    proxy_answer: "kalshi_proto.proxy.ProxyTunnel.receive_data",
    socks_answer: "kalshi_proto.proxy.Socks5Tunnel.receive_data",
}


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda m: m.__name__)
def test_the_invariant_holds_on_seeds_and_mutations(harness: ModuleType) -> None:
    rng = random.Random(20261121)
    for seed in harness.SEEDS:
        harness.check(seed)
    for _ in range(300):
        harness.check(_runner.mutate(rng.choice(harness.SEEDS), harness.TOKENS, rng))


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda m: m.__name__)
def test_the_check_catches_a_broken_parser(
    harness: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check that cannot fail proves nothing: a parser raising a stray exception must trip it.
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a parser bug")

    monkeypatch.setattr(TARGETS[harness], broken)
    with pytest.raises(KeyError):
        harness.check(harness.SEEDS[0])


def test_the_response_harness_seeds_are_real_answers() -> None:
    # The seeds from the local exchange parse into their models, so mutations start from
    # valid bodies rather than from errors only.
    for seed in response_parse.SEEDS[: len(response_parse.OPERATIONS)]:
        call, response = response_parse.decode(seed)
        assert 200 <= response.status < 300
        assert call.parse(response, wall_ms=response_parse.WALL_MS) is not None


def test_split_points_cover_the_data() -> None:
    rng = random.Random(3)
    data = bytes(range(50))
    for _ in range(100):
        pieces = _runner.split_points(data, rng)
        assert b"".join(pieces) == data and all(pieces)
    assert _runner.split_points(b"", rng) == []
    assert _runner.split_points(b"x", rng) == [b"x"]


def test_a_breaking_input_is_saved_and_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_runner, "CRASHES", tmp_path)

    def check(data: bytes) -> None:
        assert b"!" not in data

    status = _runner.run("demo", check, [b"abc"], [b"!"], ["--seconds", "5", "--seed", "1"])
    assert status == 1
    (saved,) = tmp_path.iterdir()
    assert b"!" in saved.read_bytes()
    assert "the invariant broke" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        _runner.run("demo", check, [b"abc"], [b"!"], ["--replay", str(saved)])
