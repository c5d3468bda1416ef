"""Core behaviour that mutation testing found unpinned: each test fails on a mutant that every
other test let through."""

from __future__ import annotations

import pytest

from kalshi_proto.environ import ENV_KEY_ID, ENV_PRIVATE_KEY, credentials_from_env

KEY_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


# ---- environ -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [f'"{KEY_ID}', f"{KEY_ID}'", f"\"{KEY_ID}'", f"'{KEY_ID}\"", '"', "'"]
)
def test_a_quote_without_its_partner_is_kept(value: str, rsa_pem: bytes) -> None:
    """Only a matching pair of quotes around a value is taken off: a lone or mismatched quote
    is part of the value (a value of one quote character is that character, not empty)."""
    credentials = credentials_from_env({ENV_KEY_ID: value, ENV_PRIVATE_KEY: rsa_pem.decode()})
    assert credentials is not None
    assert credentials.key_id == value
