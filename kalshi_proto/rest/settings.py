"""Build a `RestConfig` from the keyword arguments every client constructor takes.

This module may read a key file (through `kalshi_proto.environ`, the one core module allowed to);
the protocol machinery never imports it.
"""

from __future__ import annotations

import numbers
import os
from typing import TypeAlias

from kalshi_proto.auth import Credentials, Passphrase, PrivateKey, Signer, drop_secret_frames
from kalshi_proto.environ import credentials_from_arguments, credentials_from_env
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ConfigurationError
from kalshi_proto.rest.client import USER_AGENT, RestConfig
from kalshi_proto.rest.ratelimit import RateLimiter
from kalshi_proto.rest.retry import RetryPolicy

__all__ = [
    "KeyInput",
    "RateLimitSetting",
    "build_rest_config",
    "check_hooks",
    "check_optional_seconds",
    "check_pool_options",
    "rate_limiter_for",
    "rest_config_from_env",
]

#: What ``private_key=`` accepts: PEM text or bytes, a `Signer`, or a loaded cryptography key.
KeyInput: TypeAlias = str | bytes | Signer | PrivateKey
#: What ``rate_limit=`` accepts: a tier name (``"basic"``), a `RateLimiter`, or None (off).
RateLimitSetting: TypeAlias = str | RateLimiter | None


@drop_secret_frames
def build_rest_config(
    *,
    key_id: str | None = None,
    private_key: KeyInput | None = None,
    private_key_path: str | os.PathLike[str] | None = None,
    passphrase: Passphrase | None = None,
    credentials: Credentials | None = None,
    demo: bool = False,
    base_url: str | None = None,
    allow_any_host: bool = False,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    user_agent: str | None = None,
) -> RestConfig:
    """Check the constructor arguments of a client and build its `RestConfig`.

    Raises:
        CredentialsError: the key arguments are incomplete, contradictory or unusable.
        ConfigurationError: the base URL is refused, or another option is out of range.
    """
    loaded = credentials_from_arguments(key_id, private_key, private_key_path, passphrase)
    if credentials is not None and loaded is not None:
        raise ConfigurationError("give credentials= or key_id/private_key, not both")
    return RestConfig(
        base_url=resolve_base_url(demo=demo, base_url=base_url, allow_any_host=allow_any_host),
        # (``is None``, not ``or``: a wrong value such as ``0`` or ``""`` is refused, not
        # taken for "not given".)
        credentials=loaded if credentials is None else credentials,
        retry=retry if retry is not None else RetryPolicy(),
        timeout=timeout,
        user_agent=USER_AGENT if user_agent is None else user_agent,
    )


def rest_config_from_env(
    *,
    demo: bool = False,
    base_url: str | None = None,
    allow_any_host: bool = False,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    user_agent: str | None = None,
) -> RestConfig:
    """Build a `RestConfig` whose credentials come from the ``KALSHI_*`` environment variables."""
    return build_rest_config(
        credentials=credentials_from_env(),
        demo=demo,
        base_url=base_url,
        allow_any_host=allow_any_host,
        retry=retry,
        timeout=timeout,
        user_agent=user_agent,
    )


def rate_limiter_for(setting: RateLimitSetting) -> RateLimiter | None:
    """The limiter a ``rate_limit=`` argument asks for (a tier name, a limiter, or None)."""
    if setting is None or isinstance(setting, RateLimiter):
        return setting
    if not isinstance(setting, str):
        raise ConfigurationError(
            "rate_limit must be a tier name (such as 'basic'), a RateLimiter or None, got "
            f"{type(setting).__name__}"
        )
    return RateLimiter.for_tier(setting)


def check_hooks(rng: object, logger: object) -> None:
    """Refuse an ``rng=`` or ``logger=`` argument a client could not use.

    Raises:
        ConfigurationError: ``rng`` is not callable, or ``logger`` lacks ``isEnabledFor`` and
            ``log`` (a `logging.Logger` or `logging.LoggerAdapter` has both).
    """
    if rng is not None and not callable(rng):
        raise ConfigurationError(
            f"rng must be a callable returning floats in [0, 1), got {type(rng).__name__}"
        )
    if logger is not None and not all(
        callable(getattr(logger, name, None)) for name in ("isEnabledFor", "log")
    ):
        raise ConfigurationError(
            "logger must be a logging.Logger or logging.LoggerAdapter (for example "
            f"logging.getLogger('my_bot')), got {type(logger).__name__}"
        )


def check_pool_options(
    max_connections: object, keepalive_expiry: object
) -> tuple[int, float | None]:
    """Check connection-pool options an adapter could not use, and give them back as an
    ``int`` and a ``float`` (or None).

    Raises:
        ConfigurationError: ``max_connections`` is not an integer of 0 (no limit) or more, or
            ``keepalive_expiry`` is not a positive number of seconds or None.
    """
    if isinstance(max_connections, bool) or not isinstance(max_connections, numbers.Integral):
        raise ConfigurationError(
            f"max_connections must be an int (0 for no limit), got {type(max_connections).__name__}"
        )
    if max_connections < 0:
        raise ConfigurationError(
            f"max_connections must be 0 (no limit) or more, got {max_connections}"
        )
    return int(max_connections), check_optional_seconds("keepalive_expiry", keepalive_expiry)


def check_optional_seconds(name: str, value: object) -> float | None:
    """Check an option that is a positive number of seconds or None, and give it back as a
    ``float`` (or None).

    Raises:
        ConfigurationError: ``value`` is neither None nor a real number above 0 (a bool, NaN,
            0 or a negative number is refused).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, got {type(value).__name__}"
        )
    seconds = float(value)
    if not seconds > 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, got {value!r}"
        )
    return seconds
