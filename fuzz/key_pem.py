"""Fuzz private-key loading, `kalshi_proto.auth.Signer.from_pem`.

The invariant: any bytes, given as ``bytes`` or as text, with no passphrase, a ``str``, ``bytes``
or callable one, give a `Signer` or `CredentialsError`, nothing else (no ValueError, TypeError or
Rust panic from the key library); and the error's text never holds the passphrase. Run
``python fuzz/key_pem.py [--seconds 600]``; see ``fuzz/_runner.py`` for ``--atheris`` and
``--replay``.

The seeds are PEMs of one RSA and one Ed25519 key, made afresh by each run (a saved input is the
whole PEM, so it replays without them): PKCS#8 and PKCS#1 plain and encrypted, OpenSSH plain, and
a public key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from fuzz._runner import run
from kalshi_proto.auth import Signer
from kalshi_proto.errors import CredentialsError

PASSPHRASE = "fuzz-passphrase-7f3a"
_PASSPHRASES: tuple[str | bytes | Callable[[], bytes] | None, ...] = (
    None,
    PASSPHRASE,
    PASSPHRASE.encode(),
    PASSPHRASE.encode,
)


def _seeds() -> list[bytes]:
    pem = serialization.Encoding.PEM
    plain = serialization.NoEncryption()
    locked = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = serialization.PrivateFormat.PKCS8
    return [
        rsa_key.private_bytes(pem, pkcs8, plain),
        rsa_key.private_bytes(pem, pkcs8, locked),
        rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, plain),
        rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, locked),
        ed_key.private_bytes(pem, pkcs8, plain),
        ed_key.private_bytes(pem, pkcs8, locked),
        ed_key.private_bytes(pem, serialization.PrivateFormat.OpenSSH, plain),
        ed_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    ]


SEEDS = _seeds()
TOKENS = [
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----END PRIVATE KEY-----\n",
    b"-----BEGIN RSA PRIVATE KEY-----\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
    b"Proc-Type: 4,ENCRYPTED\n",
    b"DEK-Info: AES-256-CBC,",
    b"DEK-Info: DES-EDE3-CBC,",
    b"DEK-Info: AES-128-CBC,00112233\n",  # an IV shorter than the block
    b"\n",
    b"=",
    b"MII",
    b"\x00",
    b"\xff",
]


def check(data: bytes) -> None:
    """Every input form and passphrase kind: a Signer or a CredentialsError without secrets."""
    for pem in (data, data.decode("latin-1")):
        for passphrase in _PASSPHRASES:
            try:
                Signer.from_pem(pem, passphrase)
            except CredentialsError as exc:
                assert PASSPHRASE not in f"{exc}{exc!r}", exc


if __name__ == "__main__":
    sys.exit(run("key_pem", check, SEEDS, TOKENS))
