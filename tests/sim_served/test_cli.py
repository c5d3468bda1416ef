"""``python -m kalshi_anyio.sim`` serves the exchange from a shell: scenario files and faults."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kalshi_anyio import sim
from kalshi_proto.errors import CertificateError, RateLimitError
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.scenarios import default_scenario
from kalshi_sync import KalshiClient
from tests.helpers.exchange_process import exchange_process


def test_the_command_serves_the_default_scenario_with_a_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "trader.pem"
    with exchange_process("--key-type", "ed25519", key_file=key_file) as base_url:
        assert key_file.stat().st_mode & 0o777 == 0o600
        with KalshiClient(base_url=base_url, key_id="local-trader-key", private_key_path=key_file) as client:
            assert client.portfolio.balance().balance_dollars == 10_000
            assert len(list(client.markets.list_all(limit=5))) == 12


def test_with_tls_the_command_writes_the_ca_for_clients_in_other_processes(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    key_file = tmp_path / "trader.pem"
    with exchange_process("--tls", "--ca-file", str(ca_file), key_file=key_file) as base_url:
        trusting = ssl.create_default_context(cafile=ca_file)
        with KalshiClient(
            base_url=base_url, ssl_context=trusting, key_id="local-trader-key", private_key_path=key_file
        ) as client:
            assert client.portfolio.balance().balance_dollars == 10_000
        with KalshiClient(base_url=base_url, retry=RetryPolicy.disabled()) as client:
            with pytest.raises(CertificateError):  # the system's CAs do not know it
                client.exchange.status()


def test_the_command_takes_a_scenario_file_and_faults(tmp_path: Path) -> None:
    scenario = default_scenario()
    scenario["markets"] = scenario["markets"][:2]
    scenario["liquidity"] = [o for o in scenario["liquidity"] if o["ticker"] in {m["ticker"] for m in scenario["markets"]}]
    path = tmp_path / "small.json"
    path.write_text(json.dumps(scenario))
    key_file = tmp_path / "trader.pem"
    with exchange_process("--scenario", str(path), "--fault-429", "1", "--retry-after", "2", key_file=key_file) as base_url:
        with KalshiClient(base_url=base_url, retry=RetryPolicy.disabled()) as client:
            with pytest.raises(RateLimitError) as limited:
                client.markets.list()
            assert limited.value.retry_after == 2
    with exchange_process("--scenario", str(path), key_file=key_file) as base_url:
        with KalshiClient(base_url=base_url) as client:
            assert len(client.markets.list()) == 2


def test_the_command_closes_idle_connections_after_idle_timeout(tmp_path: Path) -> None:
    with exchange_process("--idle-timeout", "0.3", key_file=tmp_path / "trader.pem") as base_url:
        host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
        assert host is not None and port is not None
        with socket.create_connection((host, port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, nothing sent
            assert time.monotonic() - started >= 0.25


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("{not json", "Expecting property name"),
        (json.dumps({"start_ms": 1, "markets": [{"ticker": "M"}]}), "scenario markets[0]: missing"),
    ],
    ids=["missing-file", "not-json", "malformed"],
)
def test_a_bad_scenario_file_is_a_usage_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "scenario.json"
    if content is not None:
        path.write_text(content)
    command = [sys.executable, "-m", "kalshi_anyio.sim", "--port", "0", "--scenario", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"python -m kalshi_anyio.sim: error: --scenario {path}: "), last
    assert message in last
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "seed must be an int from 0 to 2**32 - 1, got -1"),
        (["--port", "70000"], "port must be an int from 0 (any free port) to 65535, got 70000"),
        (["--fault-429", "2"], "rate_limit_share must be within [0, 1], got 2.0"),
        (["--latency", "inf"], "latency must be a finite number of seconds >= 0, got inf"),
        (["--retry-after", "nan"], "retry_after must be a finite number of seconds >= 0, got nan"),
        (["--burst", "0"], "error_burst must be 1 or more, got 0"),
    ],
)
def test_an_option_out_of_range_is_a_usage_error(flags: list[str], message: str) -> None:
    command = [sys.executable, "-m", "kalshi_anyio.sim", "--port", "0", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == f"python -m kalshi_anyio.sim: error: {message}"
    assert "Traceback" not in done.stderr


def test_an_address_in_use_is_reported_with_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "kalshi_anyio.sim", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m kalshi_anyio.sim: [Errno "), last
    assert f"cannot listen on 127.0.0.1:{port}: " in last
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("existing_mode", [None, 0o644])
def test_no_byte_of_the_key_file_is_written_while_others_may_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing_mode: int | None
) -> None:
    # Written and then narrowed with chmod, the key could be read by anyone in between (and
    # the file of an earlier run, made readable meanwhile, kept its wider mode until then).
    key_file = tmp_path / "trader.pem"
    if existing_mode is not None:
        key_file.write_bytes(b"an older key")
        key_file.chmod(existing_mode)
    modes_at_write: list[int] = []
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        modes_at_write.append(os.fstat(fd).st_mode & 0o777)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)  # the module's os is this one
    pem = b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 70_000 + b"\n-----END PRIVATE KEY-----\n"
    sim._write_private(key_file, pem)
    assert modes_at_write and set(modes_at_write) == {0o600}
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_bytes() == pem
