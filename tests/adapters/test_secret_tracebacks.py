"""A key that fails to load leaves no key material in the error's traceback or its chain.

Error trackers and debuggers print the local variables of every frame a traceback holds
(Sentry does by default; ``rich`` with ``show_locals``; ``pytest -l``), and the exceptions
chained to it (``__context__``, ``__cause__``). While a key loads, the SDK's frames hold the PEM
text and the passphrase, and a ``UnicodeEncodeError`` holds the whole text it could not encode.
Each test here makes loading fail one way, through one entry point, then walks everything
reachable from the error: every exception of its chain, their attributes, and the locals of
every frame of the SDK's packages in their tracebacks. None may hold the secret.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import kalshi_anyio
import kalshi_httpx
import kalshi_proto
import kalshi_sync
from kalshi_proto.auth import Credentials, Signer, drop_secret_frames
from kalshi_proto.environ import (
    credentials_from_arguments,
    credentials_from_env,
    load_key_file,
)
from kalshi_proto.errors import ConfigurationError, CredentialsError, KalshiError
from kalshi_proto.rest.settings import build_rest_config

PASSPHRASE = "correct horse battery staple 7f3a"
KEY_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CLIENTS = [
    kalshi_sync.KalshiClient,
    kalshi_anyio.AsyncKalshiClient,
    kalshi_httpx.KalshiClient,
    kalshi_httpx.AsyncKalshiClient,
]
CLIENT_IDS = ["kalshi_sync", "kalshi_anyio", "httpx_sync", "httpx_async"]
PACKAGES = tuple(
    os.path.dirname(module.__file__ or "")
    for module in (kalshi_sync, kalshi_anyio, kalshi_httpx, kalshi_proto)
)


def pems() -> tuple[str, str]:
    """An Ed25519 key as plain PEM and encrypted with `PASSPHRASE`."""
    key = ed25519.Ed25519PrivateKey.generate()
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()
    return plain, locked


PLAIN, LOCKED = pems()


def secrets_of(pem: str) -> list[str]:
    # The passphrase and each line of the key's body (a frame may hold a slice of it).
    return [PASSPHRASE, *(line for line in pem.splitlines() if not line.startswith("-----"))]


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def sdk_frames(trace: TracebackType | None) -> Iterator[dict[str, Any]]:
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.startswith(PACKAGES):
            yield dict(trace.tb_frame.f_locals)
        trace = trace.tb_next


def leaks(error: BaseException, secrets: list[str]) -> list[str]:
    """Where any of ``secrets`` can be read from ``error``, as short descriptions."""
    found = []
    rendered = "".join(traceback.format_exception(error))
    for exc in chain(error):
        texts = [("args", repr(exc.args)), *((f"attr {k}", repr(v)) for k, v in vars(exc).items())]
        if isinstance(exc, UnicodeError):
            texts.append(("object", repr(exc.object)))  # type: ignore[attr-defined]
        for number, local_vars in enumerate(sdk_frames(exc.__traceback__)):
            texts += [(f"frame {number} local {k}", repr(v)) for k, v in local_vars.items()]
        texts += [(f"str of {type(exc).__name__}", str(exc)), ("rendered", rendered)]
        for where, text in texts:
            for secret in secrets:
                # repr() escapes newlines; compare the secret as repr() would show it too.
                if secret in text or repr(secret)[1:-1] in text:
                    found.append(f"{type(exc).__name__} {where}")
    return found


def failure_of(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_the_walk_finds_a_secret_in_a_frame_it_passed_through() -> None:
    # The check itself can fail: a function that raises with the passphrase in a local.
    def load(passphrase: str) -> None:
        raise CredentialsError("cannot load private key: the passphrase is wrong")

    assert leaks(failure_of(lambda: load(PASSPHRASE)), [PASSPHRASE]) == []  # a test frame
    error = failure_of(lambda: Signer.from_pem(LOCKED, lambda: PASSPHRASE + "\ud800"))
    assert leaks(error, [PASSPHRASE]) == []
    # Without the wrapper, the frames of auth.py and the UnicodeEncodeError keep it.
    unwrapped: Any = Signer.from_pem.__wrapped__  # type: ignore[attr-defined]
    bare = failure_of(lambda: unwrapped(Signer, LOCKED, PASSPHRASE + "\ud800"))
    found = leaks(bare, [PASSPHRASE])
    assert any("local passphrase" in where for where in found), found
    assert any("UnicodeEncodeError object" in where for where in found), found


@pytest.mark.parametrize("cls", CLIENTS, ids=CLIENT_IDS)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"private_key": LOCKED, "passphrase": "wrong " + PASSPHRASE}, "passphrase is wrong"),
        ({"private_key": LOCKED, "passphrase": PASSPHRASE + "\ud800"}, "cannot be encoded"),
        ({"private_key": PLAIN, "passphrase": PASSPHRASE}, "key is not encrypted"),
        ({"private_key": LOCKED[:-40], "passphrase": PASSPHRASE}, "corrupt or truncated"),
        ({"private_key_path": LOCKED, "passphrase": PASSPHRASE}, "holds PEM text, not a path"),
        ({"private_key": LOCKED, "passphrase": PASSPHRASE, "timeout": "x"}, "timeout"),
        ({"private_key": PLAIN, "proxy": "ftp://proxy.example:21"}, "proxy"),
        ({"private_key": PLAIN, "base_url": "https://example.org/x"}, "not a Kalshi host"),
    ],
    ids=[
        "wrong-passphrase",
        "unencodable-passphrase",
        "passphrase-for-plain-key",
        "truncated-key",
        "pem-as-path",
        "bad-timeout-after-the-key",
        "bad-proxy",
        "bad-host",
    ],
)
def test_a_client_that_cannot_be_built_shows_no_key_material(
    cls: Any, arguments: dict[str, Any], message: str
) -> None:
    error = failure_of(lambda: cls(key_id=KEY_ID, **arguments))
    assert isinstance(error, ConfigurationError)
    assert message in str(error)
    pem = arguments.get("private_key") or arguments["private_key_path"]
    assert leaks(error, secrets_of(pem)) == []
    # The caller still sees where it came from: the wrapper's frame, and none under it.
    frames = traceback.extract_tb(error.__traceback__)
    assert frames[-1].name == "wrapper"
    assert __file__ in [frame.filename for frame in frames]


@pytest.mark.parametrize("cls", CLIENTS, ids=CLIENT_IDS)
def test_from_env_with_a_wrong_passphrase_shows_no_key_material(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KALSHI_KEY_ID", KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY", LOCKED.replace("\n", "\\n"))
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PASSPHRASE", "wrong " + PASSPHRASE)
    error = failure_of(cls.from_env)
    assert str(error) == (
        "KALSHI_PRIVATE_KEY: cannot load private key: the passphrase is wrong (or the encrypted "
        "key is corrupt)"
    )
    assert leaks(error, secrets_of(LOCKED)) == []


def test_a_key_path_variable_holding_the_pem_is_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KALSHI_KEY_ID", KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", PLAIN)
    error = failure_of(credentials_from_env)
    assert str(error) == (
        "KALSHI_PRIVATE_KEY_PATH: key file path holds PEM text, not a path: pass the key itself "
        "as private_key= (or KALSHI_PRIVATE_KEY), not as private_key_path= "
        "(or KALSHI_PRIVATE_KEY_PATH)"
    )
    assert leaks(error, secrets_of(PLAIN)) == []


def test_a_key_file_with_a_wrong_passphrase_shows_no_key_material(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(LOCKED)
    for action in (
        lambda: load_key_file(path, "wrong " + PASSPHRASE),
        lambda: credentials_from_arguments(KEY_ID, None, path, "wrong " + PASSPHRASE),
        lambda: build_rest_config(key_id=KEY_ID, private_key_path=path, passphrase="x"),
    ):
        error = failure_of(action)
        assert "the passphrase is wrong" in str(error)
        assert leaks(error, secrets_of(LOCKED)) == []


def test_credentials_from_pem_with_a_wrong_passphrase_shows_no_key_material() -> None:
    error = failure_of(lambda: Credentials.from_pem(KEY_ID, LOCKED, "wrong " + PASSPHRASE))
    assert isinstance(error, CredentialsError)
    assert leaks(error, secrets_of(LOCKED)) == []


def test_a_passphrase_callable_that_raises_is_the_cause_without_the_sdk_frames() -> None:
    def ask() -> str:
        raise LookupError("no passphrase in the vault")

    error = failure_of(lambda: Signer.from_pem(LOCKED, ask))
    assert isinstance(error, CredentialsError)
    assert str(error) == "cannot load private key: the passphrase callable raised LookupError"
    cause = error.__cause__
    assert isinstance(cause, LookupError) and str(cause) == "no passphrase in the vault"
    assert [frame.name for frame in traceback.extract_tb(cause.__traceback__)] == ["ask"]
    assert leaks(error, secrets_of(LOCKED)) == []


def test_a_passphrase_callable_interrupted_is_not_turned_into_an_error() -> None:
    def ask() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Signer.from_pem(LOCKED, ask)


def test_other_exceptions_keep_their_frames() -> None:
    # A bug is not a KalshiError: its whole traceback is needed to find it.
    @drop_secret_frames
    def buggy(pem: str) -> None:
        raise ZeroDivisionError("a bug")

    error = failure_of(lambda: buggy("x"))
    assert isinstance(error, ZeroDivisionError)
    assert [frame.name for frame in traceback.extract_tb(error.__traceback__)][-1] == "buggy"


def test_the_wrapper_keeps_the_signature_and_a_deliberate_cause() -> None:
    cause = OSError("disk")

    @drop_secret_frames
    def load(path: str, *, passphrase: str | None = None) -> int:
        """Doc."""
        try:
            raise ValueError("inner")
        except ValueError:
            raise KalshiError("outer") from cause

    assert load.__doc__ == "Doc." and load.__name__ == "load"
    error = failure_of(lambda: load("p", passphrase="s"))
    assert error.__cause__ is cause
    assert error.__context__ is None


@pytest.mark.parametrize("cls", CLIENTS, ids=CLIENT_IDS)
def test_the_repr_of_a_client_whose_init_failed_does_not_raise(cls: Any) -> None:
    # A traceback that shows locals renders `self` of the failed __init__.
    client = cls.__new__(cls)
    assert repr(client) == f"{cls.__name__}(<not initialised>)"
