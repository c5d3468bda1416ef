"""Request signing for the Kalshi APIs: key loading, signatures and the three auth headers.

Kalshi authenticates a REST request or a WebSocket handshake with three headers
(REST-NOTES.md section 2; docs.kalshi.com "Quick start: authenticated requests"):

```
KALSHI-ACCESS-KEY        the API key id
KALSHI-ACCESS-TIMESTAMP  Unix time in milliseconds
KALSHI-ACCESS-SIGNATURE  base64 of the signature over  timestamp_ms + METHOD + path
```

The path is the full path from the API root (``/trade-api/v2/portfolio/orders``) without the
query string; the host is not signed. RSA keys sign with RSA-PSS over SHA-256, MGF1(SHA-256)
and a salt as long as the digest (32 bytes); Ed25519 keys (``ApiKeyType`` ``ed25519`` in the
trade API spec) sign the same text with plain Ed25519.

This module is pure: it reads no files and no environment variables, and the wall-clock
timestamp comes in as an argument. `kalshi_proto.environ` loads keys from files and the
environment. `Signer` and `Credentials` never show key material in ``repr``, ``str`` or error
messages, and they refuse to be pickled.

Tracebacks are kept free of it too. Error trackers and debuggers (Sentry, ``rich``'s traceback
with ``show_locals``, ``pytest -l``) print the local variables of every frame an exception
passed through, and while a key loads those hold the PEM text and the passphrase. So every
function that takes a key or a passphrase -- here, in `kalshi_proto.environ`, and each client's
constructor -- is wrapped by `drop_secret_frames`: a `KalshiError` leaves it with a traceback
that starts at the wrapper, whose only locals are the function and the error, and without the
exception it replaced (a ``UnicodeEncodeError`` holds the whole text it could not encode). The
messages say all there is to say; no frame below the wrapper is needed to read them.
"""

from __future__ import annotations

import base64
import enum
import functools
import re
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from kalshi_proto.errors import CredentialsError, KalshiError

__all__ = [
    "Credentials",
    "KeyType",
    "Passphrase",
    "PrivateKey",
    "Signer",
    "check_wall_ms",
    "drop_secret_frames",
    "signing_message",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def drop_secret_frames(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap a function that takes or reads key material, so that a `KalshiError` it raises
    carries none of it.

    The error leaves the wrapper with a new traceback, starting at the wrapper (whose locals
    are the function and the error), so the frames it passed through, whose locals hold the
    PEM and the passphrase, are not reachable from it. The exception it replaced
    (``__context__``) is dropped too; a cause set on purpose (``__cause__``, the passphrase
    callable's own exception) is kept. Other exceptions pass untouched: they are bugs, and
    their frames are needed to find them.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except KalshiError as exc:
            error = exc
        del args, kwargs  # the caller's arguments: a PEM, a passphrase
        error.__context__ = None
        raise error.with_traceback(None)  # raised outside the handler: no new context

    return wrapper

# RSA-PSS with SHA-256, MGF1(SHA-256) and a salt as long as the digest (32 bytes), built once:
# these objects are immutable and the signature is made on every private call.
_SHA256 = hashes.SHA256()
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

#: A loaded private key of a type Kalshi accepts.
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: A passphrase for an encrypted PEM: the text, its bytes, or a callable that returns either
#: (called only when the key turns out to be encrypted).
Passphrase = str | bytes | Callable[[], str | bytes]

# PEM labels are upper-case words; anything longer than this is not a label worth naming.
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")

# Method names are HTTP tokens; Kalshi uses GET, POST, PUT and DELETE.
_METHOD = re.compile(r"[A-Za-z]+")


class KeyType(enum.Enum):
    """The kind of API key, named as in the spec's ``ApiKeyType``."""

    RSA = "rsa"  #: RSA key; signatures are RSA-PSS with SHA-256.
    ED25519 = "ed25519"  #: Ed25519 key; signatures are plain Ed25519 (RFC 8032).


def _no_pickle(obj: object) -> NoReturn:
    raise TypeError(
        f"{type(obj).__name__} objects cannot be pickled: they hold a private key. "
        "Load the key again in the other process."
    )


def _utf8(text: str, what: str) -> bytes:
    # ``surrogateescape`` gives back the bytes that os.environ and os.fsdecode decoded that way
    # (a Latin-1 passphrase in the environment, say). The exception is dropped: it quotes the
    # whole text.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise CredentialsError(
            f"cannot load private key: {what} cannot be encoded as UTF-8"
        ) from None


def _encode_passphrase(value: object, *, from_callable: bool) -> bytes:
    if isinstance(value, str):
        return _utf8(value, "the passphrase")
    if isinstance(value, bytes):
        return value
    if from_callable:
        raise CredentialsError(
            f"the passphrase callable must return str or bytes, got {type(value).__name__}"
        )
    raise CredentialsError(
        f"passphrase must be str, bytes, a callable or None, got {type(value).__name__}"
    )


def _called(passphrase: Callable[[], object]) -> object:
    # The passphrase callable's value. An exception from it becomes the cause of a
    # CredentialsError (every failure to load a key is one), with its traceback starting in the
    # callable: the frames of this module hold the PEM.
    try:
        return passphrase()
    except Exception as exc:
        failure = exc
    trace = failure.__traceback__
    failure.__traceback__ = None if trace is None else trace.tb_next
    raise CredentialsError(
        f"cannot load private key: the passphrase callable raised {type(failure).__name__}"
    ) from failure


def _describe_unloadable(data: bytes) -> str:
    # Explains why a PEM that cryptography refused is not a usable private key. Only PEM
    # labels (fixed upper-case words) are quoted; the key body never is.
    labels = [match.decode("ascii") for match in _PEM_LABEL.findall(data)]
    if not labels:
        return "the data is not PEM: no '-----BEGIN ...-----' line was found"
    if "OPENSSH PRIVATE KEY" in labels:
        return (
            "the key is in OpenSSH format, which is not supported; convert it to PKCS#8 PEM "
            "(ssh-keygen -p -m PKCS8 -f FILE)"
        )
    if any(label.endswith("PRIVATE KEY") for label in labels):
        return "the private key PEM is corrupt or truncated and could not be parsed"
    if any(label.endswith("PUBLIC KEY") for label in labels):
        return "the PEM holds a public key, not a private key"
    return f"the PEM holds no private key (found a {labels[0]!r} block)"


def _load_pem(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    # cryptography's loader, with its internal failures turned into ValueError, as for any
    # other unreadable key:
    # * InternalError: OpenSSL refused the key material, e.g. a 32-byte key under the X448 OID
    #   (one bit away from Ed25519's);
    # * a Rust panic, a pyo3 ``PanicException``, which derives from BaseException and would
    #   pass every handler: cryptography 50 panics on a legacy encrypted PEM whose DEK-Info IV
    #   is shorter than the cipher's block, as a truncated key file can be.
    try:
        return serialization.load_pem_private_key(data, password=password)
    except InternalError:
        raise ValueError("the key library could not set up this key") from None
    except BaseException as exc:
        kind = type(exc)
        if kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime":
            raise ValueError("the key library failed on this PEM") from None
        raise


class Signer:
    """Signs messages with an RSA or Ed25519 private key, the way Kalshi verifies them.

    ``repr`` shows only the key type (and size for RSA). Instances are immutable, copy to
    themselves and cannot be pickled.
    """

    __slots__ = ("_key", "_key_type")

    _key: PrivateKey
    _key_type: KeyType

    def __init__(self, key: PrivateKey) -> None:
        """Wrap a loaded private key.

        Args:
            key: a cryptography ``RSAPrivateKey`` or ``Ed25519PrivateKey``.

        Raises:
            CredentialsError: the key is of another type; the message names the type.
        """
        if isinstance(key, rsa.RSAPrivateKey):
            key_type = KeyType.RSA
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            key_type = KeyType.ED25519
        else:
            raise CredentialsError(
                f"unsupported key type {type(key).__name__}: Kalshi accepts RSA and Ed25519 "
                "private keys"
            )
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_key_type", key_type)

    @classmethod
    def from_private_key(cls, key: PrivateKey) -> Signer:
        """Wrap an already loaded cryptography private key.

        Args:
            key: a cryptography ``RSAPrivateKey`` or ``Ed25519PrivateKey``.

        Returns:
            A signer for the key.

        Raises:
            CredentialsError: the key is of another type; the message names the type.
        """
        return cls(key)

    @classmethod
    @drop_secret_frames
    def from_pem(cls, pem: str | bytes, passphrase: Passphrase | None = None) -> Signer:
        """Load a PEM private key (PKCS#1 or PKCS#8, encrypted or not).

        Args:
            pem: the PEM text.
            passphrase: the passphrase of an encrypted key, or a callable returning it, which
                is called only if the key is encrypted. An empty passphrase counts as none.

        Returns:
            A signer for the key.

        Raises:
            CredentialsError: the PEM is not a private key (garbage, corrupt, a public key or
                another PEM block), the key is encrypted and no passphrase was given, the
                passphrase is wrong, the passphrase callable raised (its exception is the
                cause), a passphrase was given for a key that is not encrypted, or the key
                type is not RSA or Ed25519. The message says which; it never contains key
                material or the passphrase, and neither does its traceback.
        """
        if isinstance(pem, str):
            data = _utf8(pem, "the PEM text")
        elif isinstance(pem, bytes):
            data = pem
        else:
            raise CredentialsError(f"PEM must be str or bytes, got {type(pem).__name__}")
        fixed: bytes | None = None
        if passphrase is not None and not callable(passphrase):
            fixed = _encode_passphrase(passphrase, from_callable=False) or None

        # The first attempt goes without a password, so cryptography itself says whether the
        # key is encrypted (TypeError) before any passphrase is used. The cryptography
        # exceptions are dropped (`from None`): their text can quote the input.
        try:
            key = _load_pem(data, None)
        except TypeError:
            pass
        except ValueError:
            raise CredentialsError(
                f"cannot load private key: {_describe_unloadable(data)}"
            ) from None
        except UnsupportedAlgorithm:
            raise CredentialsError(
                "cannot load private key: it uses an algorithm this cryptography build does "
                "not support"
            ) from None
        else:
            if fixed is not None:
                raise CredentialsError(
                    "cannot load private key: a passphrase was given but the key is not encrypted"
                )
            return cls._checked(key)

        if passphrase is None:
            password = None
        elif callable(passphrase):
            password = _encode_passphrase(_called(passphrase), from_callable=True) or None
        else:
            password = fixed
        if password is None:
            raise CredentialsError(
                "cannot load private key: the key is encrypted and no passphrase (or an empty "
                "one) was given"
            )
        try:
            key = _load_pem(data, password)
        except (TypeError, ValueError):
            raise CredentialsError(
                "cannot load private key: the passphrase is wrong (or the encrypted key is corrupt)"
            ) from None
        except UnsupportedAlgorithm:
            raise CredentialsError(
                "cannot load private key: its encryption uses an algorithm this cryptography "
                "build does not support"
            ) from None
        return cls._checked(key)

    @classmethod
    def _checked(cls, key: object) -> Signer:
        if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            return cls(key)
        raise CredentialsError(
            f"cannot load private key: unsupported key type {type(key).__name__}; Kalshi "
            "accepts RSA and Ed25519 keys"
        )

    @property
    def key_type(self) -> KeyType:
        """The kind of key this signer holds."""
        return self._key_type

    def sign(self, message: bytes) -> bytes:
        """Sign a message: RSA-PSS (SHA-256, MGF1(SHA-256), 32-byte salt) or Ed25519.

        Args:
            message: the bytes to sign, usually from `signing_message`.

        Returns:
            The raw signature (base64-encode it for the header).
        """
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, _PSS, _SHA256)
        return key.sign(message)

    def public_key_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM, the form Kalshi takes on upload.

        Returns:
            PEM bytes starting with ``-----BEGIN PUBLIC KEY-----``.
        """
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return f"Signer(key_type={self._key_type.value!r}, bits={key.key_size})"
        return f"Signer(key_type={self._key_type.value!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Signer is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Signer is immutable; cannot delete {name!r}")

    def __copy__(self) -> Signer:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Signer:
        return self

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _no_pickle(self)

    def __reduce__(self) -> NoReturn:
        _no_pickle(self)


def check_wall_ms(wall_ms: object) -> None:
    """Refuse a wall-clock time that is not Unix milliseconds: an int (not a bool), 0 or more.

    Raises:
        TypeError: ``wall_ms`` is not an int.
        ValueError: ``wall_ms`` is negative.
    """
    if isinstance(wall_ms, bool) or not isinstance(wall_ms, int):
        raise TypeError(f"wall_ms must be an int (Unix milliseconds), got {type(wall_ms).__name__}")
    if wall_ms < 0:
        raise ValueError(f"wall_ms must not be negative, got {wall_ms}")


def signing_message(wall_ms: int, method: str, path: str) -> bytes:
    """Build the text Kalshi signs: ``f"{wall_ms}{METHOD}{path}"`` without the query string.

    Args:
        wall_ms: Unix time in milliseconds; the same value goes in ``KALSHI-ACCESS-TIMESTAMP``.
        method: the HTTP method, in any case (it is upper-cased).
        path: the full path from the API root, e.g. ``/trade-api/v2/portfolio/orders``;
            everything from the first ``?`` or ``#`` on is dropped (neither the query
            string nor a fragment is signed; a fragment is never sent).

    Returns:
        The ASCII bytes to sign.

    Raises:
        TypeError: ``wall_ms`` is not an int, or ``method`` or ``path`` not a str.
        ValueError: ``wall_ms`` is negative, the method is not a word of ASCII letters, or
            the path does not start with ``/`` or is not ASCII (percent-encode it first).
    """
    check_wall_ms(wall_ms)
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {type(path).__name__}")
    if not _METHOD.fullmatch(method):
        raise ValueError(f"method must be an HTTP method such as 'GET', got {method!r}")
    bare_path = path.split("?", 1)[0].split("#", 1)[0]
    if not bare_path.startswith("/"):
        raise ValueError(f"path must start with '/', got {bare_path!r}")
    if not bare_path.isascii():
        raise ValueError("path must be ASCII; percent-encode it before signing")
    return f"{wall_ms}{method.upper()}{bare_path}".encode("ascii")


class Credentials:
    """An API key id and its signer; builds the three ``KALSHI-ACCESS-*`` headers.

    ``repr`` and ``str`` show the key id and key type only. Instances are immutable, copy to
    themselves and cannot be pickled.
    """

    __slots__ = ("_key_id", "_signer")

    _key_id: str
    _signer: Signer

    def __init__(self, key_id: str, signer: Signer) -> None:
        """Pair a key id with a signer.

        Args:
            key_id: the API key id Kalshi issued (a UUID), without surrounding whitespace.
            signer: the signer for the key's private half.

        Raises:
            CredentialsError: the key id is not a non-empty string of visible ASCII
                characters, or the signer is not a `Signer`. The key id is not quoted, in
                case a secret was passed in its place.
        """
        if not isinstance(key_id, str):
            raise CredentialsError(f"key_id must be a str, got {type(key_id).__name__}")
        if not key_id:
            raise CredentialsError("key_id is empty")
        if not (key_id.isascii() and key_id.isprintable()) or any(c.isspace() for c in key_id):
            raise CredentialsError(
                "key_id must be visible ASCII characters without whitespace (an API key id is "
                "a UUID)"
            )
        if not isinstance(signer, Signer):
            raise CredentialsError(f"signer must be a Signer, got {type(signer).__name__}")
        object.__setattr__(self, "_key_id", key_id)
        object.__setattr__(self, "_signer", signer)

    @classmethod
    @drop_secret_frames
    def from_pem(
        cls, key_id: str, pem: str | bytes, passphrase: Passphrase | None = None
    ) -> Credentials:
        """Build credentials from a key id and a PEM private key.

        Args:
            key_id: the API key id.
            pem: the PEM text of the private key (PKCS#1 or PKCS#8, encrypted or not).
            passphrase: the passphrase of an encrypted key, or a callable returning it.

        Returns:
            The credentials.

        Raises:
            CredentialsError: the key id is invalid or the key cannot be loaded; see
                `Signer.from_pem`.
        """
        signer = Signer.from_pem(pem, passphrase)
        return cls(key_id, signer)

    @property
    def key_id(self) -> str:
        """The API key id sent in ``KALSHI-ACCESS-KEY``."""
        return self._key_id

    @property
    def key_type(self) -> KeyType:
        """The kind of key that signs."""
        return self._signer.key_type

    @property
    def signer(self) -> Signer:
        """The signer, for protocols that sign other text (the FIX logon)."""
        return self._signer

    def headers(self, method: str, path: str, wall_ms: int) -> tuple[tuple[str, str], ...]:
        """Sign a request and return its auth headers.

        Args:
            method: the HTTP method.
            path: the full request path from the API root; a query string is allowed and is
                not signed.
            wall_ms: Unix time in milliseconds, read by the adapter.

        Returns:
            ``KALSHI-ACCESS-KEY``, ``KALSHI-ACCESS-TIMESTAMP`` and ``KALSHI-ACCESS-SIGNATURE``
            as (name, value) pairs, in that order.

        Raises:
            TypeError: ``wall_ms`` is not an int.
            ValueError: the method, path or timestamp is malformed; see `signing_message`.
        """
        message = signing_message(wall_ms, method, path)
        signature = base64.b64encode(self._signer.sign(message)).decode("ascii")
        return (
            ("KALSHI-ACCESS-KEY", self._key_id),
            ("KALSHI-ACCESS-TIMESTAMP", str(wall_ms)),
            ("KALSHI-ACCESS-SIGNATURE", signature),
        )

    def __repr__(self) -> str:
        return f"Credentials(key_id={self._key_id!r}, key_type={self.key_type.value!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Credentials is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Credentials is immutable; cannot delete {name!r}")

    def __copy__(self) -> Credentials:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Credentials:
        return self

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _no_pickle(self)

    def __reduce__(self) -> NoReturn:
        _no_pickle(self)
