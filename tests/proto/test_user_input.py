"""Whatever a caller passes, the SDK answers with a value or its own clear error.

Base URLs, PEM keys, passphrases, key ids and ``Retry-After`` text from any source give a value or
the documented error type (`ConfigurationError`, `CredentialsError`), never an exception from a
library underneath, and no secret in the message.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ConfigurationError, CredentialsError
from kalshi_proto.rest.retry import parse_retry_after

_URL_PIECES = [
    "https://",
    "http://",
    "ftp://",
    "//",
    "api.elections.kalshi.com",
    "127.0.0.1",
    "[::1]",
    "localhost",
    ":",
    ":443",
    ":0",
    ":99999",
    "/trade-api/v2",
    "?",
    "#",
    "@",
    "user:pw@",
    "%",
    "\\",
    " ",
    "\x00",
    "é",
    "[",
]


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=60), st.lists(st.sampled_from(_URL_PIECES), max_size=8).map("".join)
    ),
    allow_any_host=st.booleans(),
)
def test_any_base_url_gives_a_base_url_or_a_configuration_error(
    text: str, allow_any_host: bool
) -> None:
    try:
        url = resolve_base_url(base_url=text, allow_any_host=allow_any_host)
    except ConfigurationError as exc:
        assert str(exc)
    else:
        assert url.scheme in ("https", "http") and url.host
        assert 1 <= url.port <= 65535


def _pem_like(body: bytes, label: str) -> bytes:
    return (
        f"-----BEGIN {label}-----\n".encode()
        + base64.encodebytes(body)
        + f"-----END {label}-----\n".encode()
    )


_REAL = ed25519.Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)

pems = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.builds(
        _pem_like,
        st.one_of(
            st.binary(max_size=120),
            st.binary(min_size=1, max_size=4).map(lambda junk: _REAL[:-4] + junk),
        ),
        st.sampled_from(
            ["PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE"]
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(pem=pems, passphrase=st.one_of(st.none(), st.text(max_size=8), st.binary(max_size=8)))
@example(pem=b"", passphrase=" ..")  # occurs in the message's fixed text "-----BEGIN ...-----"
def test_any_pem_gives_a_signer_or_a_credentials_error(
    pem: str | bytes, passphrase: str | bytes | None
) -> None:
    try:
        Signer.from_pem(pem, passphrase)
    except CredentialsError as exc:
        message = str(exc)
        assert message
        text = str(passphrase)
        if passphrase and text in message:
            # Only by chance, in the message's fixed text: the same call with another
            # passphrase must say it too.
            try:
                Signer.from_pem(pem, "\x00another passphrase\x00")
            except CredentialsError as other:
                assert text in str(other)
            else:
                raise AssertionError("a key that refused one passphrase took another")


@settings(max_examples=200, deadline=None)
@given(key_id=st.text(max_size=60))
def test_any_key_id_gives_credentials_or_a_credentials_error(key_id: str) -> None:
    signer = Signer.from_private_key(ed25519.Ed25519PrivateKey.generate())
    try:
        credentials = Credentials(key_id, signer)
    except CredentialsError as exc:
        assert str(exc)
    else:
        assert dict(credentials.headers("GET", "/trade-api/v2/x", 1))["KALSHI-ACCESS-KEY"] == key_id


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(st.none(), st.text(max_size=40)), wall_ms=st.integers(0, 2**45))
def test_any_retry_after_gives_seconds_or_none(value: str | None, wall_ms: int) -> None:
    seconds = parse_retry_after(value, wall_ms=wall_ms)
    assert seconds is None or seconds >= 0
