"""Fixtures shared by the REST core tests: a fake clock and RSA credentials."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_proto.auth import Credentials, Signer
from tests.helpers.clock import FakeClock

#: The key id of `rsa_credentials`.
KEY_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rsa_credentials(rsa_private_key: rsa.RSAPrivateKey) -> Credentials:
    return Credentials(KEY_ID, Signer.from_private_key(rsa_private_key))
