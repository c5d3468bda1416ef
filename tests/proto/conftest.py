"""Key fixtures shared by the core tests: one RSA 2048 and one Ed25519 key per session."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ed25519_private_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def rsa_pem(rsa_private_key: rsa.RSAPrivateKey) -> bytes:
    """The RSA key as PKCS#1 PEM, the form Kalshi's key generator returns."""
    return rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def ed25519_pem(ed25519_private_key: ed25519.Ed25519PrivateKey) -> bytes:
    """The Ed25519 key as PKCS#8 PEM, the form Kalshi's key generator returns."""
    return ed25519_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
