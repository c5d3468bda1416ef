"""Tests for kalshi_proto.environ: key files, KALSHI_* variables and constructor arguments."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from kalshi_proto.auth import Credentials, KeyType, Signer
from kalshi_proto.environ import (
    ENV_KEY_ID,
    ENV_PRIVATE_KEY,
    ENV_PRIVATE_KEY_PASSPHRASE,
    ENV_PRIVATE_KEY_PATH,
    credentials_from_arguments,
    credentials_from_env,
    load_key_file,
    proxy_variable,
    unused_proxy_note,
)
from kalshi_proto.errors import CredentialsError

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
PASSPHRASE = "s3cret passphrase"


def assert_signs_for(signer: Signer, key: rsa.RSAPrivateKey) -> None:
    signature = signer.sign(b"message")
    key.public_key().verify(
        signature,
        b"message",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def assert_no_secrets(text: str, *secrets: bytes | str) -> None:
    for secret in secrets:
        if isinstance(secret, bytes):
            for line in secret.splitlines():
                if line and not line.startswith(b"-----"):
                    assert line.decode() not in text
        else:
            assert secret not in text


@pytest.fixture(scope="module")
def rsa_encrypted_pem(rsa_private_key: rsa.RSAPrivateKey) -> bytes:
    return rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )


@pytest.fixture
def key_file(tmp_path: Path, rsa_pem: bytes) -> Path:
    path = tmp_path / "kalshi.pem"
    path.write_bytes(rsa_pem)
    return path


# --- load_key_file ------------------------------------------------------------------------------


def test_load_key_file_from_str_and_path(
    key_file: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    for path in (key_file, str(key_file)):
        signer = load_key_file(path)
        assert signer.key_type is KeyType.RSA
        assert_signs_for(signer, rsa_private_key)


def test_load_key_file_expands_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ed25519_pem: bytes,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kalshi").mkdir()
    (tmp_path / ".kalshi" / "key.pem").write_bytes(ed25519_pem)
    signer = load_key_file("~/.kalshi/key.pem")
    assert signer.key_type is KeyType.ED25519
    ed25519_private_key.public_key().verify(signer.sign(b"m"), b"m")


def test_load_key_file_with_passphrase(
    tmp_path: Path, rsa_encrypted_pem: bytes, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "encrypted.pem"
    path.write_bytes(rsa_encrypted_pem)
    assert_signs_for(load_key_file(path, PASSPHRASE), rsa_private_key)
    assert_signs_for(load_key_file(path, lambda: PASSPHRASE), rsa_private_key)
    with pytest.raises(CredentialsError) as info:
        load_key_file(path, "not it")
    message = str(info.value)
    assert str(path) in message
    assert "the passphrase is wrong" in message
    assert_no_secrets(message + repr(info.value), rsa_encrypted_pem, "not it", PASSPHRASE)
    assert info.value.__cause__ is None


def test_missing_key_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.pem"
    with pytest.raises(CredentialsError) as info:
        load_key_file(path)
    assert str(info.value) == f"private key file {str(path)!r} does not exist"


def test_missing_key_file_under_home_names_the_expanded_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CredentialsError, match="does not exist") as info:
        load_key_file("~/nope.pem")
    assert str(tmp_path / "nope.pem") in str(info.value)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        load_key_file(tmp_path)
    assert str(info.value) == f"private key file {str(tmp_path)!r} is a directory, not a key file"


def test_device_is_not_a_key_file() -> None:
    with pytest.raises(CredentialsError) as info:
        load_key_file(os.devnull)
    assert str(info.value) == f"private key file {os.devnull!r} is not a regular file"


def test_path_through_a_file_cannot_be_read(key_file: Path) -> None:
    path = key_file / "inner.pem"
    with pytest.raises(CredentialsError) as info:
        load_key_file(path)
    assert str(path) in str(info.value)
    assert "cannot be read: Not a directory" in str(info.value)


def test_unreadable_key_file(key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, where chmod 000 does not stop reads, so open() is made to fail.
    def denied(self: Path, mode: str = "r") -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(CredentialsError) as info:
        load_key_file(key_file)
    assert (
        str(info.value) == f"private key file {str(key_file)!r} cannot be read: Permission denied"
    )
    assert info.value.__cause__ is None


def test_read_error_without_a_reason(key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Path, mode: str = "r") -> object:
        raise OSError

    monkeypatch.setattr(Path, "open", broken)
    with pytest.raises(CredentialsError, match=r"cannot be read: OSError$"):
        load_key_file(key_file)


def test_oversized_key_file(tmp_path: Path) -> None:
    path = tmp_path / "big.pem"
    path.write_bytes(b"A" * ((1 << 20) + 1))
    with pytest.raises(CredentialsError, match="is larger than 1 MiB") as info:
        load_key_file(path)
    assert "AAAA" not in str(info.value)


def test_a_key_file_of_exactly_1_mib_is_read(tmp_path: Path, rsa_pem: bytes) -> None:
    path = tmp_path / "padded.pem"
    path.write_bytes(rsa_pem + b"\n" * ((1 << 20) - len(rsa_pem)))
    assert load_key_file(path).key_type is KeyType.RSA


def test_key_file_content_is_never_echoed(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    public = rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "public.pem"
    path.write_bytes(public)
    with pytest.raises(CredentialsError) as info:
        load_key_file(path)
    assert str(path) in str(info.value)
    assert "public key, not a private key" in str(info.value)
    assert_no_secrets(str(info.value), public)

    path.write_text("token=abcdef0123456789\n")
    with pytest.raises(CredentialsError, match="not PEM") as info:
        load_key_file(path)
    assert "abcdef0123456789" not in str(info.value)


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_key_file_path(path: str) -> None:
    with pytest.raises(CredentialsError, match="key file path is empty"):
        load_key_file(path)


def test_key_file_path_with_a_nul_character() -> None:
    # open() would raise ValueError("embedded null byte").
    with pytest.raises(CredentialsError, match="key file path contains a NUL character"):
        load_key_file("keys/\0key.pem")


def test_key_file_path_under_a_home_that_cannot_be_found() -> None:
    # Path.expanduser raises RuntimeError for an unknown user (and for "~" with HOME unset
    # and no passwd entry, as in some containers).
    path = "~no-such-user-kalshi-sdk-test/key.pem"
    with pytest.raises(CredentialsError, match="home directory cannot be found") as info:
        load_key_file(path)
    assert repr(path) in str(info.value)


@pytest.mark.parametrize(("path", "type_name"), [(b"/tmp/key.pem", "bytes"), (3, "int")])
def test_key_file_path_of_the_wrong_type(path: object, type_name: str) -> None:
    with pytest.raises(
        CredentialsError, match=f"must be a str or a str path object, got {type_name}"
    ):
        load_key_file(path)  # type: ignore[arg-type]


# --- credentials_from_arguments -----------------------------------------------------------------


def test_no_arguments_mean_no_credentials() -> None:
    assert credentials_from_arguments(None, None, None) is None
    assert credentials_from_arguments(None, None, None, None) is None


def test_credentials_from_pem_argument(
    rsa_pem: bytes, rsa_private_key: rsa.RSAPrivateKey, rsa_encrypted_pem: bytes
) -> None:
    for pem in (rsa_pem, rsa_pem.decode()):
        credentials = credentials_from_arguments(KEY_ID, pem, None)
        assert isinstance(credentials, Credentials)
        assert credentials.key_id == KEY_ID
        assert_signs_for(credentials.signer, rsa_private_key)
    credentials = credentials_from_arguments(KEY_ID, rsa_encrypted_pem, None, PASSPHRASE)
    assert credentials is not None
    assert_signs_for(credentials.signer, rsa_private_key)


def test_credentials_from_path_argument(key_file: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    for path in (key_file, str(key_file)):
        credentials = credentials_from_arguments(KEY_ID, None, path)
        assert credentials is not None
        assert_signs_for(credentials.signer, rsa_private_key)


def test_credentials_from_signer_or_loaded_key(
    rsa_private_key: rsa.RSAPrivateKey, ed25519_private_key: ed25519.Ed25519PrivateKey
) -> None:
    signer = Signer(rsa_private_key)
    credentials = credentials_from_arguments(KEY_ID, signer, None)
    assert credentials is not None
    assert credentials.signer is signer
    credentials = credentials_from_arguments(KEY_ID, ed25519_private_key, None)
    assert credentials is not None
    assert credentials.key_type is KeyType.ED25519


@pytest.mark.parametrize(
    ("key_id", "key", "path", "passphrase", "expected"),
    [
        (
            None,
            None,
            None,
            "pw",
            "passphrase was given without key_id and private_key or private_key_path",
        ),
        (None, "PEM", None, None, "private_key was given without key_id"),
        (None, None, "/k.pem", None, "private_key_path was given without key_id"),
        (KEY_ID, None, None, None, "key_id was given without private_key or private_key_path"),
        (KEY_ID, None, None, "pw", "key_id was given without private_key or private_key_path"),
        (KEY_ID, "PEM", "/k.pem", None, "give private_key or private_key_path, not both"),
        (None, "PEM", "/k.pem", None, "give private_key or private_key_path, not both"),
    ],
)
def test_argument_combinations_that_are_refused(
    key_id: str | None,
    key: str | None,
    path: str | None,
    passphrase: str | None,
    expected: str,
) -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_arguments(key_id, key, path, passphrase)
    assert str(info.value) == expected


def test_passphrase_with_a_loaded_key_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    for key in (rsa_private_key, Signer(rsa_private_key)):
        with pytest.raises(CredentialsError, match="passphrase applies only to a PEM"):
            credentials_from_arguments(KEY_ID, key, None, PASSPHRASE)


def test_unusable_key_arguments(rsa_pem: bytes) -> None:
    with pytest.raises(CredentialsError, match="unsupported key type int"):
        credentials_from_arguments(KEY_ID, 5, None)  # type: ignore[arg-type]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CredentialsError, match="unsupported key type"):
        credentials_from_arguments(KEY_ID, ec_key, None)  # type: ignore[arg-type]
    with pytest.raises(CredentialsError, match="not PEM"):
        credentials_from_arguments(KEY_ID, "/home/me/key.pem", None)
    with pytest.raises(CredentialsError, match="key_id is empty"):
        credentials_from_arguments("", rsa_pem, None)
    with pytest.raises(CredentialsError, match="does not exist"):
        credentials_from_arguments(KEY_ID, None, "/nonexistent/kalshi/key.pem")


# --- credentials_from_env -----------------------------------------------------------------------


def test_no_variables_mean_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials_from_env({}) is None
    assert credentials_from_env({"HOME": "/root", "KALSHI_OTHER": "x"}) is None
    blank = {ENV_KEY_ID: "", ENV_PRIVATE_KEY: "  ", ENV_PRIVATE_KEY_PATH: "\n"}
    assert credentials_from_env(blank) is None
    assert credentials_from_env({**blank, ENV_PRIVATE_KEY_PASSPHRASE: " "}) is None
    for name in (ENV_KEY_ID, ENV_PRIVATE_KEY, ENV_PRIVATE_KEY_PATH, ENV_PRIVATE_KEY_PASSPHRASE):
        monkeypatch.delenv(name, raising=False)
    assert credentials_from_env() is None


def test_variable_names() -> None:
    assert ENV_KEY_ID == "KALSHI_KEY_ID"
    assert ENV_PRIVATE_KEY == "KALSHI_PRIVATE_KEY"
    assert ENV_PRIVATE_KEY_PATH == "KALSHI_PRIVATE_KEY_PATH"
    assert ENV_PRIVATE_KEY_PASSPHRASE == "KALSHI_PRIVATE_KEY_PASSPHRASE"


def test_credentials_from_os_environ(
    monkeypatch: pytest.MonkeyPatch, rsa_pem: bytes, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    monkeypatch.setenv(ENV_KEY_ID, KEY_ID)
    monkeypatch.setenv(ENV_PRIVATE_KEY, rsa_pem.decode())
    monkeypatch.delenv(ENV_PRIVATE_KEY_PATH, raising=False)
    monkeypatch.delenv(ENV_PRIVATE_KEY_PASSPHRASE, raising=False)
    credentials = credentials_from_env()
    assert credentials is not None
    assert credentials.key_id == KEY_ID
    assert_signs_for(credentials.signer, rsa_private_key)


def test_credentials_from_pem_variable(rsa_pem: bytes, rsa_private_key: rsa.RSAPrivateKey) -> None:
    text = rsa_pem.decode()
    one_line = text.replace("\n", "\\n")
    assert "\n" not in one_line
    variants = [
        text,
        one_line,
        text.replace("\n", "\r\n"),
        one_line.replace("\\n", "\\r\\n"),
        f'"{one_line}"',
        f"'{one_line}'",
        f"  {text}  ",
    ]
    for value in variants:
        credentials = credentials_from_env({ENV_KEY_ID: f" {KEY_ID}\n", ENV_PRIVATE_KEY: value})
        assert credentials is not None
        assert credentials.key_id == KEY_ID
        assert_signs_for(credentials.signer, rsa_private_key)


@pytest.mark.parametrize("quote", ['"', "'"])
def test_quotes_an_env_file_left_around_the_key_id_and_path_are_dropped(
    quote: str, key_file: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    # As they are around a PEM: with them, the key id would fail later, at the server (401),
    # and the path would name a file that does not exist.
    env = {
        ENV_KEY_ID: f"{quote}{KEY_ID}{quote}",
        ENV_PRIVATE_KEY_PATH: f"{quote}{key_file}{quote}",
    }
    credentials = credentials_from_env(env)
    assert credentials is not None
    assert credentials.key_id == KEY_ID
    assert_signs_for(credentials.signer, rsa_private_key)
    assert credentials_from_env({ENV_KEY_ID: f"{quote}{quote}"}) is None  # quoted nothing


def test_credentials_from_encrypted_pem_variable(
    rsa_encrypted_pem: bytes, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    env = {
        ENV_KEY_ID: KEY_ID,
        ENV_PRIVATE_KEY: rsa_encrypted_pem.decode().replace("\n", "\\n"),
        ENV_PRIVATE_KEY_PASSPHRASE: PASSPHRASE,
    }
    credentials = credentials_from_env(env)
    assert credentials is not None
    assert_signs_for(credentials.signer, rsa_private_key)
    assert_no_secrets(repr(credentials) + str(credentials), rsa_encrypted_pem, PASSPHRASE)


def test_passphrase_variable_is_used_as_set(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    padded = " padded passphrase "
    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(padded.encode()),
    )
    env = {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY: pem.decode(), ENV_PRIVATE_KEY_PASSPHRASE: padded}
    credentials = credentials_from_env(env)
    assert credentials is not None
    assert_signs_for(credentials.signer, rsa_private_key)


def test_credentials_from_path_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rsa_encrypted_pem: bytes,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "kalshi.pem").write_bytes(rsa_encrypted_pem)
    env = {
        ENV_KEY_ID: KEY_ID,
        ENV_PRIVATE_KEY_PATH: "~/keys/kalshi.pem",
        ENV_PRIVATE_KEY_PASSPHRASE: PASSPHRASE,
    }
    credentials = credentials_from_env(env)
    assert credentials is not None
    assert_signs_for(credentials.signer, rsa_private_key)
    headers = dict(credentials.headers("GET", "/trade-api/v2/portfolio/balance", 1))
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"])
    rsa_private_key.public_key().verify(
        signature,
        b"1GET/trade-api/v2/portfolio/balance",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {ENV_PRIVATE_KEY_PASSPHRASE: "pw"},
            "KALSHI_PRIVATE_KEY_PASSPHRASE is set but KALSHI_KEY_ID and KALSHI_PRIVATE_KEY "
            "or KALSHI_PRIVATE_KEY_PATH are not",
        ),
        ({ENV_KEY_ID: KEY_ID}, "KALSHI_KEY_ID is set but neither KALSHI_PRIVATE_KEY nor "),
        (
            {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY_PASSPHRASE: "pw", ENV_PRIVATE_KEY: " "},
            "KALSHI_KEY_ID is set but neither KALSHI_PRIVATE_KEY nor KALSHI_PRIVATE_KEY_PATH is",
        ),
        ({ENV_PRIVATE_KEY: "PEM"}, "KALSHI_PRIVATE_KEY is set but KALSHI_KEY_ID is not"),
        (
            {ENV_PRIVATE_KEY_PATH: "/k.pem", ENV_KEY_ID: ""},
            "KALSHI_PRIVATE_KEY_PATH is set but KALSHI_KEY_ID is not",
        ),
        (
            {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY: "PEM", ENV_PRIVATE_KEY_PATH: "/k.pem"},
            "both KALSHI_PRIVATE_KEY and KALSHI_PRIVATE_KEY_PATH are set; it is ambiguous",
        ),
    ],
)
def test_variable_combinations_that_are_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(env)
    assert expected in str(info.value)
    for value in env.values():
        if value.strip() and value not in ("KALSHI_KEY_ID", KEY_ID):
            assert value not in str(info.value)


def test_bad_pem_variable_names_the_variable(rsa_encrypted_pem: bytes) -> None:
    env = {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY: "not a key at all"}
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(env)
    assert str(info.value).startswith("KALSHI_PRIVATE_KEY: cannot load private key")
    assert "not a key at all" not in str(info.value)
    assert info.value.__cause__ is None

    env = {
        ENV_KEY_ID: KEY_ID,
        ENV_PRIVATE_KEY: rsa_encrypted_pem.decode(),
        ENV_PRIVATE_KEY_PASSPHRASE: "guess",
    }
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(env)
    assert str(info.value).startswith("KALSHI_PRIVATE_KEY: cannot load private key")
    assert "the passphrase is wrong" in str(info.value)
    assert_no_secrets(str(info.value) + repr(info.value), rsa_encrypted_pem, "guess")

    env = {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY: rsa_encrypted_pem.decode()}
    with pytest.raises(CredentialsError, match="encrypted and no passphrase"):
        credentials_from_env(env)


def test_bad_path_variable_names_the_variable_and_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"
    env = {ENV_KEY_ID: KEY_ID, ENV_PRIVATE_KEY_PATH: str(path)}
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(env)
    assert str(info.value) == (
        f"KALSHI_PRIVATE_KEY_PATH: private key file {str(path)!r} does not exist"
    )
    assert info.value.__cause__ is None


def test_bad_key_id_variable_names_the_variable(rsa_pem: bytes) -> None:
    env = {ENV_KEY_ID: "two words", ENV_PRIVATE_KEY: rsa_pem.decode()}
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(env)
    assert str(info.value).startswith("KALSHI_KEY_ID: key_id must be visible ASCII")
    assert "two words" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "  "}, None),
        ({"https_proxy": "http://p:1"}, "https_proxy"),
        ({"ALL_PROXY": "socks5://p:1", "HTTPS_PROXY": "http://p:1"}, "HTTPS_PROXY"),
        ({"HTTP_PROXY": "http://p:1"}, None),  # plain http only: the API is https
    ],
)
def test_proxy_variable_names_the_first_https_proxy_set(
    environ: dict[str, str], named: str | None
) -> None:
    assert proxy_variable(environ) == named


def test_the_unused_proxy_note_names_the_variable_and_how_to_pass_it_on() -> None:
    assert unused_proxy_note("kalshi_sync", {}) is None
    assert unused_proxy_note("kalshi_anyio", {"all_proxy": "http://p:1"}) == (
        "all_proxy is set, but kalshi_anyio connects directly unless given a proxy: "
        "pass proxy=os.environ['all_proxy'], or use kalshi_httpx"
    )
