"""Credentials from key files, environment variables and client constructor arguments.

This is the one core module that reads files and environment variables (DESIGN.md, "The rules
that make it sans-I/O"). Every client's constructor (for ``private_key_path=``) and its
``from_env()`` call it, so the rules live in one place; no protocol machinery imports it.

Environment variables read by `credentials_from_env`:

=================================  ===========================================================
``KALSHI_KEY_ID``                  the API key id
``KALSHI_PRIVATE_KEY``             the private key as PEM text; ``\\n`` escapes, as written in
                                   ``.env`` files, are turned into newlines
``KALSHI_PRIVATE_KEY_PATH``        path of a PEM key file (``~`` is expanded); instead of
                                   ``KALSHI_PRIVATE_KEY``
``KALSHI_PRIVATE_KEY_PASSPHRASE``  passphrase of an encrypted key
=================================  ===========================================================

A variable that is empty or only whitespace counts as not set. Error messages name variables
and paths, never their secret values.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from kalshi_proto.auth import Credentials, Passphrase, PrivateKey, Signer, drop_secret_frames
from kalshi_proto.errors import CredentialsError

__all__ = [
    "ENV_KEY_ID",
    "ENV_PRIVATE_KEY",
    "ENV_PRIVATE_KEY_PASSPHRASE",
    "ENV_PRIVATE_KEY_PATH",
    "PROXY_VARIABLES",
    "credentials_from_arguments",
    "credentials_from_env",
    "load_key_file",
    "proxy_variable",
    "unused_proxy_note",
]

#: Environment variable holding the API key id.
ENV_KEY_ID = "KALSHI_KEY_ID"
#: Environment variable holding the PEM private key text.
ENV_PRIVATE_KEY = "KALSHI_PRIVATE_KEY"
#: Environment variable holding the path of a PEM private key file.
ENV_PRIVATE_KEY_PATH = "KALSHI_PRIVATE_KEY_PATH"
#: Environment variable holding the passphrase of an encrypted private key.
ENV_PRIVATE_KEY_PASSPHRASE = "KALSHI_PRIVATE_KEY_PASSPHRASE"

# A PEM key is a few kilobytes; anything much larger is not a key file, and a size cap keeps
# a wrong path (a log file, a disk image) from being read whole.
_MAX_KEY_FILE_BYTES = 1 << 20


@drop_secret_frames
def load_key_file(path: str | os.PathLike[str], passphrase: Passphrase | None = None) -> Signer:
    """Load a PEM private key file into a `Signer`.

    Args:
        path: the file's path; a leading ``~`` is expanded.
        passphrase: the passphrase of an encrypted key, or a callable returning it.

    Returns:
        A signer for the key.

    Raises:
        CredentialsError: the path is empty, holds a NUL or PEM text, starts with a ``~``
            whose home directory cannot be found, is missing, a directory, not a regular
            file, too large or unreadable, or its content is not a usable private key (see
            `Signer.from_pem`). The message names the path (unless it is PEM text), never
            the file's content.
    """
    try:
        raw: object = os.fspath(path)
    except TypeError:
        raw = None
    if not isinstance(raw, str):
        raise CredentialsError(
            f"key file path must be a str or a str path object, got {type(path).__name__}"
        )
    if not raw.strip():
        raise CredentialsError("key file path is empty")
    if "\0" in raw:
        raise CredentialsError("key file path contains a NUL character")
    if "-----BEGIN" in raw or "PRIVATE KEY" in raw:
        # Not quoted, as every other path is: this one is the key.
        raise CredentialsError(
            "key file path holds PEM text, not a path: pass the key itself as private_key= "
            f"(or {ENV_PRIVATE_KEY}), not as private_key_path= (or {ENV_PRIVATE_KEY_PATH})"
        )
    try:
        resolved = Path(raw).expanduser()
    except RuntimeError:  # "~" with HOME unset and no passwd entry, or "~user" unknown
        raise CredentialsError(
            f"key file path {raw!r} starts with ~, but that home directory cannot be found "
            "(HOME is not set, or there is no such user)"
        ) from None
    where = f"private key file {str(resolved)!r}"
    try:
        info = resolved.stat()
    except FileNotFoundError:
        raise CredentialsError(f"{where} does not exist") from None
    except OSError as exc:
        raise CredentialsError(f"{where} cannot be read: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CredentialsError(f"{where} is a directory, not a key file")
    if not stat.S_ISREG(info.st_mode):
        raise CredentialsError(f"{where} is not a regular file")
    try:
        with resolved.open("rb") as file:
            data = file.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{where} cannot be read: {_reason(exc)}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise CredentialsError(f"{where} is larger than 1 MiB, too large for a PEM key")
    try:
        return Signer.from_pem(data, passphrase)
    except CredentialsError as exc:
        raise CredentialsError(f"{where}: {exc}") from None


def _reason(exc: OSError) -> str:
    # strerror ("Permission denied") without the path and errno decoration of str(exc).
    return exc.strerror or type(exc).__name__


@drop_secret_frames
def credentials_from_arguments(
    key_id: str | None,
    private_key: str | bytes | Signer | PrivateKey | None,
    private_key_path: str | os.PathLike[str] | None,
    passphrase: Passphrase | None = None,
) -> Credentials | None:
    """Build credentials from the auth arguments every client constructor takes.

    Args:
        key_id: the API key id.
        private_key: the private key as PEM text, a `Signer` or a loaded cryptography RSA or
            Ed25519 key.
        private_key_path: the path of a PEM key file, instead of ``private_key``.
        passphrase: the passphrase of an encrypted PEM key, or a callable returning it.

    Returns:
        The credentials, or ``None`` when no argument was given (the client is then
        unauthenticated and calls only public operations).

    Raises:
        CredentialsError: a key id without a key or a key without a key id; both
            ``private_key`` and ``private_key_path``; a passphrase without a PEM key; or the
            key id or key cannot be used. The message names the argument.
    """
    has_key = private_key is not None
    has_path = private_key_path is not None
    if key_id is None and not has_key and not has_path:
        if passphrase is not None:
            raise CredentialsError(
                "passphrase was given without key_id and private_key or private_key_path"
            )
        return None
    if has_key and has_path:
        raise CredentialsError("give private_key or private_key_path, not both")
    if key_id is None:
        which = "private_key" if has_key else "private_key_path"
        raise CredentialsError(f"{which} was given without key_id")
    if private_key_path is not None:
        signer = load_key_file(private_key_path, passphrase)
    elif isinstance(private_key, str | bytes):
        signer = Signer.from_pem(private_key, passphrase)
    elif private_key is None:
        raise CredentialsError("key_id was given without private_key or private_key_path")
    elif passphrase is not None:
        raise CredentialsError(
            "passphrase applies only to a PEM private_key or private_key_path, not to a loaded key"
        )
    elif isinstance(private_key, Signer):
        signer = private_key
    else:
        signer = Signer.from_private_key(private_key)
    return Credentials(key_id, signer)


def _unquoted(text: str) -> str:
    # .env files and ``docker --env-file`` can leave the quotes around a value in it. A key
    # id, a path and a PEM never start and end with the same quote.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def _unescape_pem(text: str) -> str:
    # .env files and CI secret stores often hold a PEM on one line with literal "\n"
    # sequences, sometimes inside quotes. Base64 has no backslash or quote, so neither
    # replacement can damage a real PEM.
    return _unquoted(text).replace("\\r\\n", "\n").replace("\\n", "\n")


@drop_secret_frames
def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Build credentials from ``KALSHI_*`` environment variables.

    Args:
        environ: the variables to read; ``os.environ`` when ``None``.

    Returns:
        The credentials, or ``None`` when none of the four variables is set.

    Raises:
        CredentialsError: a key id without a key, a key without a key id, both
            ``KALSHI_PRIVATE_KEY`` and ``KALSHI_PRIVATE_KEY_PATH``, a passphrase alone, or a
            key id or key that cannot be used. The message names the variable.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or not _unquoted(value.strip()):
            return None
        return _unquoted(value.strip())

    key_id = get(ENV_KEY_ID)
    pem = get(ENV_PRIVATE_KEY)
    path = get(ENV_PRIVATE_KEY_PATH)
    # The passphrase is used exactly as set (spaces can be part of it), unless it is blank.
    passphrase = env.get(ENV_PRIVATE_KEY_PASSPHRASE)
    if passphrase is not None and not passphrase.strip():
        passphrase = None

    if key_id is None and pem is None and path is None:
        if passphrase is not None:
            raise CredentialsError(
                f"{ENV_PRIVATE_KEY_PASSPHRASE} is set but {ENV_KEY_ID} and "
                f"{ENV_PRIVATE_KEY} or {ENV_PRIVATE_KEY_PATH} are not"
            )
        return None
    if pem is not None and path is not None:
        raise CredentialsError(
            f"both {ENV_PRIVATE_KEY} and {ENV_PRIVATE_KEY_PATH} are set; it is ambiguous "
            "which key to use, so unset one of them"
        )
    if key_id is None:
        which = ENV_PRIVATE_KEY if pem is not None else ENV_PRIVATE_KEY_PATH
        raise CredentialsError(f"{which} is set but {ENV_KEY_ID} is not")
    if pem is not None:
        try:
            signer = Signer.from_pem(_unescape_pem(pem), passphrase)
        except CredentialsError as exc:
            raise CredentialsError(f"{ENV_PRIVATE_KEY}: {exc}") from None
    elif path is not None:
        try:
            signer = load_key_file(path, passphrase)
        except CredentialsError as exc:
            raise CredentialsError(f"{ENV_PRIVATE_KEY_PATH}: {exc}") from None
    else:
        raise CredentialsError(
            f"{ENV_KEY_ID} is set but neither {ENV_PRIVATE_KEY} nor {ENV_PRIVATE_KEY_PATH} is"
        )
    try:
        return Credentials(key_id, signer)
    except CredentialsError as exc:
        raise CredentialsError(f"{ENV_KEY_ID}: {exc}") from None


#: The variables that name a proxy for HTTPS, as curl and httpx read them.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def proxy_variable(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the first of `PROXY_VARIABLES` that is set (not blank), or None.

    Read for `unused_proxy_note`.
    """
    env = os.environ if environ is None else environ
    return next((name for name in PROXY_VARIABLES if env.get(name, "").strip()), None)


def unused_proxy_note(package: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The note for a direct connection of ``package`` (`kalshi_sync`, `kalshi_anyio`) that
    failed while one of `PROXY_VARIABLES` is set, or None when none is: those clients read no
    proxy from the environment, which a user behind a proxy may not expect."""
    variable = proxy_variable(environ)
    if variable is None:
        return None
    return (
        f"{variable} is set, but {package} connects directly unless given a proxy: "
        f"pass proxy=os.environ[{variable!r}], or use kalshi_httpx"
    )
