"""Tests for kalshi_proto.auth: signatures verified with the public key, key loading errors, and
no key material, passphrase or signature in any repr, str or error message."""

from __future__ import annotations

import base64
import copy
import pickle
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from kalshi_proto.auth import Credentials, KeyType, Signer, signing_message
from kalshi_proto.errors import ConfigurationError, CredentialsError

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
PASSPHRASE = "correct horse battery staple"
WALL_MS = 1_703_123_456_789


def verify_rsa(key: rsa.RSAPrivateKey, signature: bytes, message: bytes) -> None:
    # An explicit salt length of 32 makes verification fail for any other salt length.
    key.public_key().verify(
        signature,
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def secret_fragments(pem: bytes) -> list[str]:
    """Lines of a PEM body: none of them may appear in any message."""
    return [
        line.decode()
        for line in pem.splitlines()
        if line and not line.startswith(b"-----") and b":" not in line
    ]


def assert_no_secrets(text: str, *secrets: bytes | str) -> None:
    for secret in secrets:
        if isinstance(secret, bytes):
            for fragment in secret_fragments(secret):
                assert fragment not in text
            assert secret.decode("latin-1") not in text
        else:
            assert secret not in text


def encrypted_pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    passphrase: bytes = PASSPHRASE.encode(),
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(passphrase)
    )


def load_error(
    pem: str | bytes, passphrase: str | bytes | Callable[[], str | bytes] | None = None
) -> CredentialsError:
    with pytest.raises(CredentialsError) as info:
        Signer.from_pem(pem, passphrase)
    exc = info.value
    # Any cryptography exception is dropped so its text cannot leak input into a traceback.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    return exc


@pytest.fixture(scope="module")
def rsa_encrypted_pem(rsa_private_key: rsa.RSAPrivateKey) -> bytes:
    return encrypted_pem(rsa_private_key)


@pytest.fixture(scope="module")
def rsa_signer(rsa_private_key: rsa.RSAPrivateKey) -> Signer:
    return Signer(rsa_private_key)


@pytest.fixture(scope="module")
def ed25519_signer(ed25519_private_key: ed25519.Ed25519PrivateKey) -> Signer:
    return Signer(ed25519_private_key)


# --- KeyType and Signer construction -----------------------------------------------------------


def test_key_type_values_match_the_spec() -> None:
    assert KeyType.RSA.value == "rsa"
    assert KeyType.ED25519.value == "ed25519"
    assert KeyType("ed25519") is KeyType.ED25519


def test_signer_wraps_rsa_and_ed25519_keys(
    rsa_private_key: rsa.RSAPrivateKey, ed25519_private_key: ed25519.Ed25519PrivateKey
) -> None:
    assert Signer(rsa_private_key).key_type is KeyType.RSA
    assert Signer.from_private_key(rsa_private_key).key_type is KeyType.RSA
    assert Signer.from_private_key(ed25519_private_key).key_type is KeyType.ED25519


@pytest.mark.parametrize(
    "key", [ec.generate_private_key(ec.SECP256R1()), "-----BEGIN PRIVATE KEY-----", None]
)
def test_signer_refuses_other_key_types(key: object) -> None:
    # cryptography's EC key class is ECPrivateKey (Rust) in current releases.
    type_name = type(key).__name__
    with pytest.raises(CredentialsError, match=f"unsupported key type {type_name}:") as info:
        Signer.from_private_key(key)  # type: ignore[arg-type]
    assert "RSA and Ed25519" in str(info.value)
    assert isinstance(info.value, ConfigurationError)


def test_signer_repr_shows_only_the_key_type(
    rsa_signer: Signer, ed25519_signer: Signer, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    assert repr(rsa_signer) == "Signer(key_type='rsa', bits=2048)"
    assert str(rsa_signer) == repr(rsa_signer)
    assert repr(ed25519_signer) == "Signer(key_type='ed25519')"
    assert_no_secrets(repr(rsa_signer) + str(rsa_signer), rsa_pem)
    assert_no_secrets(repr(ed25519_signer) + str(ed25519_signer), ed25519_pem)


# --- signatures ---------------------------------------------------------------------------------


def test_rsa_signature_is_pss_sha256_with_32_byte_salt(
    rsa_private_key: rsa.RSAPrivateKey, rsa_signer: Signer
) -> None:
    message = b"1703123456789GET/trade-api/v2/portfolio/balance"
    signature = rsa_signer.sign(message)
    assert len(signature) == 256
    verify_rsa(rsa_private_key, signature, message)
    # PSS is randomised: two signatures differ, both verify.
    other = rsa_signer.sign(message)
    assert other != signature
    verify_rsa(rsa_private_key, other, message)
    with pytest.raises(InvalidSignature):
        verify_rsa(rsa_private_key, signature, message + b"x")
    # The salt is the digest length (32), so a verifier that expects another length refuses it.
    for salt_length in (20, 64):
        with pytest.raises(InvalidSignature):
            rsa_private_key.public_key().verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length),
                hashes.SHA256(),
            )


def test_ed25519_signature_verifies(
    ed25519_private_key: ed25519.Ed25519PrivateKey, ed25519_signer: Signer
) -> None:
    message = b"1703123456789POST/trade-api/v2/portfolio/orders"
    signature = ed25519_signer.sign(message)
    assert len(signature) == 64
    ed25519_private_key.public_key().verify(signature, message)
    with pytest.raises(InvalidSignature):
        ed25519_private_key.public_key().verify(signature, message + b"x")


def test_public_key_pem_is_subject_public_key_info(
    rsa_private_key: rsa.RSAPrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
    rsa_signer: Signer,
    ed25519_signer: Signer,
) -> None:
    for key, signer in ((rsa_private_key, rsa_signer), (ed25519_private_key, ed25519_signer)):
        pem = signer.public_key_pem()
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
        expected = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert pem == expected


# --- loading PEM --------------------------------------------------------------------------------


def test_from_pem_loads_pkcs1_and_pkcs8_as_str_or_bytes(
    rsa_private_key: rsa.RSAPrivateKey, rsa_pem: bytes, ed25519_pem: bytes
) -> None:
    assert rsa_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    pkcs8 = rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for pem in (rsa_pem, rsa_pem.decode(), pkcs8, pkcs8.decode()):
        signer = Signer.from_pem(pem)
        assert signer.key_type is KeyType.RSA
        verify_rsa(rsa_private_key, signer.sign(b"m"), b"m")
    assert Signer.from_pem(ed25519_pem).key_type is KeyType.ED25519
    assert Signer.from_pem(ed25519_pem.decode()).key_type is KeyType.ED25519


def test_from_pem_decrypts_with_passphrase_str_bytes_or_callable(
    rsa_private_key: rsa.RSAPrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
    rsa_encrypted_pem: bytes,
) -> None:
    assert rsa_encrypted_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    pkcs1 = encrypted_pem(rsa_private_key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert b"Proc-Type: 4,ENCRYPTED" in pkcs1
    for pem in (rsa_encrypted_pem, pkcs1):
        for passphrase in (PASSPHRASE, PASSPHRASE.encode(), lambda: PASSPHRASE):
            signer = Signer.from_pem(pem, passphrase)
            verify_rsa(rsa_private_key, signer.sign(b"m"), b"m")
    ed_pem = encrypted_pem(ed25519_private_key)
    assert Signer.from_pem(ed_pem, lambda: PASSPHRASE.encode()).key_type is KeyType.ED25519


def test_passphrase_callable_is_not_called_for_an_unencrypted_key(rsa_pem: bytes) -> None:
    def fail() -> str:
        raise AssertionError("called")

    assert Signer.from_pem(rsa_pem, fail).key_type is KeyType.RSA


def test_empty_passphrase_counts_as_none(rsa_pem: bytes) -> None:
    assert Signer.from_pem(rsa_pem, "").key_type is KeyType.RSA
    assert Signer.from_pem(rsa_pem, b"").key_type is KeyType.RSA


@pytest.mark.parametrize("passphrase", [None, "", b"", lambda: ""])
def test_encrypted_key_without_passphrase(
    rsa_encrypted_pem: bytes, passphrase: str | bytes | Callable[[], str] | None
) -> None:
    exc = load_error(rsa_encrypted_pem, passphrase)
    assert "the key is encrypted and no passphrase" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), rsa_encrypted_pem)


@pytest.mark.parametrize("wrong", ["wrong passphrase", b"nope", lambda: "still wrong"])
def test_wrong_passphrase(
    rsa_private_key: rsa.RSAPrivateKey,
    rsa_encrypted_pem: bytes,
    wrong: str | bytes | Callable[[], str],
) -> None:
    pkcs1 = encrypted_pem(rsa_private_key, serialization.PrivateFormat.TraditionalOpenSSL)
    for pem in (rsa_encrypted_pem, pkcs1):
        exc = load_error(pem, wrong)
        assert "the passphrase is wrong" in str(exc)
        assert_no_secrets(str(exc) + repr(exc), pem, "wrong passphrase", "nope", "still wrong")


def test_encrypted_key_with_a_truncated_iv_is_a_credentials_error(
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    # cryptography 50 panics on a DEK-Info IV shorter than the cipher's block (a pyo3
    # PanicException, which is a BaseException and would pass every except clause); 42 refuses
    # the PEM before it asks for the passphrase. Both are a corrupt key to the caller.
    pkcs1 = encrypted_pem(rsa_private_key, serialization.PrivateFormat.TraditionalOpenSSL)
    head, dek_info, rest = pkcs1.partition(b"DEK-Info: ")
    cipher, comma, tail = rest.partition(b",")
    iv, newline, body = tail.partition(b"\n")
    truncated = head + dek_info + cipher + comma + iv[:-2] + newline + body
    for passphrase in (PASSPHRASE, lambda: PASSPHRASE):
        exc = load_error(truncated, passphrase)
        assert str(exc) in {
            "cannot load private key: the passphrase is wrong (or the encrypted key is corrupt)",
            "cannot load private key: the private key PEM is corrupt or truncated and could not "
            "be parsed",
        }
        assert_no_secrets(str(exc) + repr(exc), pkcs1, PASSPHRASE)


def test_key_openssl_cannot_set_up_is_a_credentials_error(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    # One bit turns Ed25519's OID (1.3.101.112) into X448's (1.3.101.111), whose keys are 56
    # bytes: OpenSSL refuses the 32-byte key and cryptography raises InternalError.
    der = ed25519_private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der.count(b"\x2b\x65\x70") == 1
    x448 = base64.encodebytes(der.replace(b"\x2b\x65\x70", b"\x2b\x65\x6f"))
    pem = b"-----BEGIN PRIVATE KEY-----\n" + x448 + b"-----END PRIVATE KEY-----\n"
    exc = load_error(pem)
    assert str(exc).startswith("cannot load private key")
    assert_no_secrets(str(exc) + repr(exc), pem)


def test_passphrase_for_an_unencrypted_key(rsa_pem: bytes) -> None:
    exc = load_error(rsa_pem, PASSPHRASE)
    assert "a passphrase was given but the key is not encrypted" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), rsa_pem, PASSPHRASE)


def test_passphrase_of_the_wrong_type(rsa_pem: bytes) -> None:
    exc = load_error(rsa_pem, 1234)  # type: ignore[arg-type]
    assert "passphrase must be str, bytes, a callable or None, got int" in str(exc)


def test_passphrase_callable_returning_the_wrong_type(rsa_encrypted_pem: bytes) -> None:
    exc = load_error(rsa_encrypted_pem, lambda: 1234)  # type: ignore[arg-type,return-value]
    assert "the passphrase callable must return str or bytes, got int" in str(exc)


def test_a_passphrase_decoded_with_surrogateescape_loads_the_key(
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    # os.environ holds a Latin-1 passphrase decoded with surrogateescape; its bytes come back.
    raw = "p\xe4ssword".encode("latin-1")
    pem = encrypted_pem(rsa_private_key, passphrase=raw)
    signer = Signer.from_pem(pem, raw.decode("utf-8", "surrogateescape"))
    assert signer.public_key_pem() == Signer(rsa_private_key).public_key_pem()


@pytest.mark.parametrize("where", ["passphrase", "callable", "pem"])
def test_text_that_is_not_utf8_is_a_credentials_error_that_quotes_nothing(
    rsa_encrypted_pem: bytes, where: str
) -> None:
    secret = "s3cret\ud800"  # a lone surrogate no encoding can write
    if where == "pem":
        exc = load_error(rsa_encrypted_pem.decode() + secret, PASSPHRASE)
        assert str(exc) == "cannot load private key: the PEM text cannot be encoded as UTF-8"
    else:
        exc = load_error(rsa_encrypted_pem, secret if where == "passphrase" else lambda: secret)
        assert str(exc) == "cannot load private key: the passphrase cannot be encoded as UTF-8"
    assert exc.__cause__ is None and exc.__suppress_context__
    assert_no_secrets(repr(exc), "s3cret")


def test_pem_of_the_wrong_type() -> None:
    exc = load_error(bytearray(b"x"))  # type: ignore[arg-type]
    assert "PEM must be str or bytes, got bytearray" in str(exc)


@pytest.mark.parametrize(
    "garbage",
    ["", "hello", "MIIEowIBAAKCAQEA", b"\x00\xff\x10", "-----BEGIN private key-----"],
)
def test_garbage_is_not_pem(garbage: str | bytes) -> None:
    exc = load_error(garbage)
    assert "the data is not PEM" in str(exc)
    assert "-----BEGIN" in str(exc)


def test_garbage_message_does_not_echo_the_input() -> None:
    secret = "my-api-secret-value-0123456789"
    exc = load_error(secret)
    assert_no_secrets(str(exc) + repr(exc), secret)


def test_corrupt_private_key(rsa_pem: bytes, ed25519_pem: bytes) -> None:
    for pem in (rsa_pem, ed25519_pem):
        lines = pem.splitlines()
        body = b"".join(lines[1:-1])
        truncated = b"\n".join([lines[0], body[: len(body) // 8 * 4], lines[-1]]) + b"\n"
        exc = load_error(truncated)
        assert "the private key PEM is corrupt or truncated" in str(exc)
        assert_no_secrets(str(exc) + repr(exc), pem)


def test_public_key_instead_of_private_key(
    rsa_private_key: rsa.RSAPrivateKey, rsa_signer: Signer, ed25519_signer: Signer
) -> None:
    pkcs1_public = rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    for pem in (rsa_signer.public_key_pem(), ed25519_signer.public_key_pem(), pkcs1_public):
        exc = load_error(pem)
        assert "the PEM holds a public key, not a private key" in str(exc)


def test_other_pem_block() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    exc = load_error(pem)
    assert "the PEM holds no private key (found a 'CERTIFICATE' block)" in str(exc)


def test_openssh_key_is_refused_with_a_conversion_hint(
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    pem = ed25519_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    exc = load_error(pem)
    assert "OpenSSH format" in str(exc)
    assert "PKCS8" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), pem)


def test_unsupported_key_type_in_pem() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    exc = load_error(pem)
    assert f"unsupported key type {type(key).__name__};" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), pem)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    exc = load_error(encrypted, "pw")
    assert f"unsupported key type {type(key).__name__};" in str(exc)


def test_unsupported_algorithm_when_reading(
    monkeypatch: pytest.MonkeyPatch, rsa_pem: bytes
) -> None:
    def refuse(data: bytes, password: bytes | None) -> object:
        raise UnsupportedAlgorithm(f"echo {data!r}")

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    exc = load_error(rsa_pem)
    assert "uses an algorithm this cryptography build does not support" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), rsa_pem)


def test_unsupported_algorithm_when_decrypting(
    monkeypatch: pytest.MonkeyPatch, rsa_pem: bytes
) -> None:
    def refuse(data: bytes, password: bytes | None) -> object:
        if password is None:
            raise TypeError("Password was not given but private key is encrypted")
        raise UnsupportedAlgorithm(f"echo {data!r} {password!r}")

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    exc = load_error(rsa_pem, PASSPHRASE)
    assert "its encryption uses an algorithm this cryptography build does not support" in str(exc)
    assert_no_secrets(str(exc) + repr(exc), rsa_pem, PASSPHRASE)


# --- signing_message ----------------------------------------------------------------------------


def test_signing_message_is_timestamp_method_path() -> None:
    assert (
        signing_message(WALL_MS, "GET", "/trade-api/v2/portfolio/balance")
        == b"1703123456789GET/trade-api/v2/portfolio/balance"
    )


def test_signing_message_upper_cases_the_method_and_drops_the_query() -> None:
    assert (
        signing_message(0, "delete", "/trade-api/v2/portfolio/orders?limit=5&cursor=a?b")
        == b"0DELETE/trade-api/v2/portfolio/orders"
    )
    assert signing_message(5, "Post", "/x?") == b"5POST/x"


@pytest.mark.parametrize("path", ["/a/b#frag", "/a/b#frag?x=1", "/a/b?x=1#frag", "/a/b#"])
def test_signing_message_drops_a_fragment_which_is_never_sent(path: str) -> None:
    assert signing_message(5, "GET", path) == b"5GET/a/b"


@pytest.mark.parametrize("wall_ms", [True, 1.5, "1703123456789", None])
def test_signing_message_needs_an_int_timestamp(wall_ms: object) -> None:
    with pytest.raises(TypeError, match="wall_ms must be an int"):
        signing_message(wall_ms, "GET", "/x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        (5, "/x", "method must be a str, got int"),
        (b"GET", "/x", "method must be a str, got bytes"),
        ("GET", b"/x", "path must be a str, got bytes"),
        ("GET", None, "path must be a str, got NoneType"),
    ],
)
def test_signing_message_needs_a_str_method_and_path(
    method: object, path: object, message: str
) -> None:
    # These raised TypeErrors from inside re and str.split that named neither argument.
    with pytest.raises(TypeError) as info:
        signing_message(0, method, path)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_signing_message_refuses_a_negative_timestamp() -> None:
    with pytest.raises(ValueError, match="wall_ms must not be negative, got -1"):
        signing_message(-1, "GET", "/x")


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\n", "GÉT", "G1"])
def test_signing_message_refuses_bad_methods(method: str) -> None:
    with pytest.raises(ValueError, match="method must be an HTTP method"):
        signing_message(1, method, "/x")


@pytest.mark.parametrize("path", ["", "trade-api/v2/x", "?a=/b", "https://h/x"])
def test_signing_message_needs_an_absolute_path(path: str) -> None:
    with pytest.raises(ValueError, match="path must start with '/'"):
        signing_message(1, "GET", path)


def test_signing_message_needs_an_ascii_path() -> None:
    with pytest.raises(ValueError, match="path must be ASCII"):
        signing_message(1, "GET", "/markets/ÉVÉNEMENT")


# --- Credentials --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_credentials(rsa_signer: Signer) -> Credentials:
    return Credentials(KEY_ID, rsa_signer)


def test_credentials_headers_verify_with_rsa(
    rsa_private_key: rsa.RSAPrivateKey, rsa_credentials: Credentials
) -> None:
    headers = rsa_credentials.headers("get", "/trade-api/v2/portfolio/orders?limit=5", WALL_MS)
    names = [name for name, _ in headers]
    assert names == ["KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"]
    values = dict(headers)
    assert values["KALSHI-ACCESS-KEY"] == KEY_ID
    assert values["KALSHI-ACCESS-TIMESTAMP"] == "1703123456789"
    signature = base64.b64decode(values["KALSHI-ACCESS-SIGNATURE"], validate=True)
    verify_rsa(rsa_private_key, signature, b"1703123456789GET/trade-api/v2/portfolio/orders")
    with pytest.raises(InvalidSignature):
        verify_rsa(
            rsa_private_key, signature, b"1703123456789GET/trade-api/v2/portfolio/orders?limit=5"
        )


def test_credentials_headers_verify_with_ed25519(
    ed25519_private_key: ed25519.Ed25519PrivateKey, ed25519_pem: bytes
) -> None:
    credentials = Credentials.from_pem(KEY_ID, ed25519_pem)
    assert credentials.key_type is KeyType.ED25519
    headers = dict(credentials.headers("POST", "/trade-api/ws/v2", 42))
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "42"
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"], validate=True)
    ed25519_private_key.public_key().verify(signature, b"42POST/trade-api/ws/v2")


def test_credentials_headers_pass_on_argument_errors(rsa_credentials: Credentials) -> None:
    with pytest.raises(TypeError):
        rsa_credentials.headers("GET", "/x", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rsa_credentials.headers("GET", "x", 1)


def test_credentials_properties(rsa_credentials: Credentials, rsa_signer: Signer) -> None:
    assert rsa_credentials.key_id == KEY_ID
    assert rsa_credentials.key_type is KeyType.RSA
    assert rsa_credentials.signer is rsa_signer


def test_credentials_from_encrypted_pem(
    rsa_private_key: rsa.RSAPrivateKey, rsa_encrypted_pem: bytes
) -> None:
    credentials = Credentials.from_pem(KEY_ID, rsa_encrypted_pem.decode(), PASSPHRASE)
    signature = credentials.signer.sign(b"m")
    verify_rsa(rsa_private_key, signature, b"m")
    with pytest.raises(CredentialsError, match="the passphrase is wrong"):
        Credentials.from_pem(KEY_ID, rsa_encrypted_pem, "bad")


@pytest.mark.parametrize(
    ("key_id", "expected"),
    [
        (None, "key_id must be a str, got NoneType"),
        (b"abc", "key_id must be a str, got bytes"),
        ("", "key_id is empty"),
        (" " + KEY_ID, "key_id must be visible ASCII characters without whitespace"),
        (KEY_ID + "\n", "key_id must be visible ASCII characters without whitespace"),
        ("a b", "key_id must be visible ASCII characters without whitespace"),
        ("abc\x00", "key_id must be visible ASCII characters without whitespace"),
        ("clé", "key_id must be visible ASCII characters without whitespace"),
    ],
)
def test_credentials_validate_the_key_id(rsa_signer: Signer, key_id: object, expected: str) -> None:
    with pytest.raises(CredentialsError) as info:
        Credentials(key_id, rsa_signer)  # type: ignore[arg-type]
    assert expected in str(info.value)


def test_credentials_key_id_error_does_not_echo_a_pem_passed_by_mistake(
    rsa_signer: Signer, rsa_pem: bytes
) -> None:
    with pytest.raises(CredentialsError) as info:
        Credentials(rsa_pem.decode(), rsa_signer)
    assert_no_secrets(str(info.value) + repr(info.value), rsa_pem)


def test_credentials_need_a_signer(rsa_private_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(CredentialsError, match="signer must be a Signer, got RSAPrivateKey"):
        Credentials(KEY_ID, rsa_private_key)  # type: ignore[arg-type]


def test_credentials_repr_shows_key_id_and_type_only(
    rsa_credentials: Credentials, rsa_pem: bytes
) -> None:
    expected = f"Credentials(key_id={KEY_ID!r}, key_type='rsa')"
    assert repr(rsa_credentials) == expected
    assert str(rsa_credentials) == expected
    signature = dict(rsa_credentials.headers("GET", "/x", 1))["KALSHI-ACCESS-SIGNATURE"]
    assert_no_secrets(repr(rsa_credentials) + str(rsa_credentials), rsa_pem, signature)


def test_encrypted_credentials_repr_has_no_passphrase(rsa_encrypted_pem: bytes) -> None:
    credentials = Credentials.from_pem(KEY_ID, rsa_encrypted_pem, PASSPHRASE)
    text = repr(credentials) + str(credentials) + repr(credentials.signer)
    assert_no_secrets(text, rsa_encrypted_pem, PASSPHRASE)


# --- immutability, copying, pickling ------------------------------------------------------------


def test_signer_and_credentials_are_immutable(
    rsa_signer: Signer, rsa_credentials: Credentials, ed25519_signer: Signer
) -> None:
    with pytest.raises(AttributeError, match="Signer is immutable; cannot set '_key'"):
        rsa_signer._key = ed25519_signer._key
    with pytest.raises(AttributeError, match="cannot set 'other'"):
        rsa_signer.other = 1
    with pytest.raises(AttributeError, match="Signer is immutable; cannot delete '_key'"):
        del rsa_signer._key
    with pytest.raises(AttributeError, match="Credentials is immutable; cannot set '_key_id'"):
        rsa_credentials._key_id = "other"
    with pytest.raises(AttributeError, match="Credentials is immutable; cannot delete"):
        del rsa_credentials._signer
    with pytest.raises(AttributeError):
        rsa_credentials.key_id = "other"  # type: ignore[misc]
    assert rsa_signer.key_type is KeyType.RSA
    assert rsa_credentials.key_id == KEY_ID


def test_objects_have_no_instance_dict(rsa_signer: Signer, rsa_credentials: Credentials) -> None:
    for obj in (rsa_signer, rsa_credentials):
        assert not hasattr(obj, "__dict__")


def test_copies_are_the_same_object(rsa_signer: Signer, rsa_credentials: Credentials) -> None:
    for obj in (rsa_signer, rsa_credentials):
        assert copy.copy(obj) is obj
        assert copy.deepcopy(obj) is obj
    holder = copy.deepcopy({"credentials": rsa_credentials})
    assert holder["credentials"] is rsa_credentials


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_is_refused(
    rsa_signer: Signer, rsa_credentials: Credentials, protocol: int
) -> None:
    for obj, name in ((rsa_signer, "Signer"), (rsa_credentials, "Credentials")):
        with pytest.raises(TypeError, match=f"{name} objects cannot be pickled"):
            pickle.dumps(obj, protocol=protocol)


def test_reduce_is_refused(rsa_signer: Signer, rsa_credentials: Credentials) -> None:
    with pytest.raises(TypeError, match="cannot be pickled: they hold a private key"):
        rsa_signer.__reduce__()
    with pytest.raises(TypeError, match="cannot be pickled"):
        rsa_credentials.__reduce__()
    with pytest.raises(TypeError, match="cannot be pickled"):
        rsa_credentials.__reduce_ex__(2)


def test_identity_equality_and_hashing(rsa_private_key: rsa.RSAPrivateKey) -> None:
    first = Credentials(KEY_ID, Signer(rsa_private_key))
    second = Credentials(KEY_ID, Signer(rsa_private_key))
    assert first == first
    assert first != second
    assert len({first, second, first}) == 2
