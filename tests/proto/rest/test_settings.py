"""`kalshi_proto.rest.settings`: client constructor arguments to `RestConfig`."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from kalshi_proto.auth import Credentials, KeyType
from kalshi_proto.environments import DEMO_SERVERS, PRODUCTION_SERVERS
from kalshi_proto.errors import ConfigurationError, CredentialsError
from kalshi_proto.rest.client import USER_AGENT, RestConfig
from kalshi_proto.rest.ratelimit import TIERS, Bucket, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.rest.settings import (
    build_rest_config,
    check_hooks,
    check_pool_options,
    rate_limiter_for,
    rest_config_from_env,
)

KEY_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
ENV_NAMES = (
    "KALSHI_KEY_ID",
    "KALSHI_PRIVATE_KEY",
    "KALSHI_PRIVATE_KEY_PATH",
    "KALSHI_PRIVATE_KEY_PASSPHRASE",
)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---- build_rest_config --------------------------------------------------------------------


def test_defaults() -> None:
    config = build_rest_config()
    assert isinstance(config, RestConfig)
    assert config.base_url.url == PRODUCTION_SERVERS[0]
    assert config.credentials is None
    assert config.retry == RetryPolicy()
    assert config.timeout == 30.0
    assert config.user_agent == USER_AGENT


def test_each_default_call_gets_its_own_equal_retry_policy() -> None:
    assert build_rest_config().retry == build_rest_config().retry


def test_options_are_passed_through() -> None:
    retry = RetryPolicy.disabled()
    config = build_rest_config(demo=True, retry=retry, timeout=2.5, user_agent="bot/1")
    assert config.base_url.url == DEMO_SERVERS[0]
    assert config.retry is retry
    assert config.timeout == 2.5
    assert config.user_agent == "bot/1"


def test_only_none_means_the_default_user_agent() -> None:
    assert build_rest_config(user_agent=None).user_agent == USER_AGENT
    # A value that is falsy but wrong is refused, not taken for "not given".
    wrongs: list[object] = ["", 0, []]
    for wrong in wrongs:
        with pytest.raises(ConfigurationError, match=r"^user_agent must be a non-empty single"):
            build_rest_config(user_agent=wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize("wrong", [0, "", [], {}, False])
def test_a_falsy_wrong_credentials_value_is_refused(wrong: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^credentials must be a Credentials or None"):
        build_rest_config(credentials=wrong)  # type: ignore[arg-type]


def test_an_explicit_base_url() -> None:
    config = build_rest_config(base_url="http://127.0.0.1:8080/trade-api/v2/")
    assert config.base_url.url == "http://127.0.0.1:8080/trade-api/v2"
    assert config.base_url.prefix == "/trade-api/v2"
    proxy = build_rest_config(base_url="https://proxy.example/k", allow_any_host=True)
    assert proxy.base_url.host == "proxy.example"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "https://proxy.example/k"}, "is not a Kalshi host"),
        ({"demo": True, "base_url": PRODUCTION_SERVERS[0]}, "contradict each other"),
        ({"timeout": 0.0}, "timeout must be positive"),
        ({"user_agent": "a\nb"}, "user_agent must be a non-empty single line"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_rest_config(**kwargs)  # type: ignore[arg-type]


def test_ready_made_credentials_are_used(rsa_pem: bytes) -> None:
    credentials = Credentials.from_pem(KEY_ID, rsa_pem)
    assert build_rest_config(credentials=credentials).credentials is credentials


@pytest.mark.parametrize("form", ["bytes", "str"])
def test_key_arguments_are_loaded(form: str, rsa_pem: bytes, ed25519_pem: bytes) -> None:
    for pem, key_type in ((rsa_pem, KeyType.RSA), (ed25519_pem, KeyType.ED25519)):
        key = pem if form == "bytes" else pem.decode()
        config = build_rest_config(key_id=KEY_ID, private_key=key)
        assert config.credentials is not None
        assert config.credentials.key_id == KEY_ID
        assert config.credentials.key_type is key_type


def test_a_key_file_is_loaded(tmp_path: Path, rsa_pem: bytes) -> None:
    path = tmp_path / "kalshi.pem"
    path.write_bytes(rsa_pem)
    path.chmod(0o600)
    config = build_rest_config(key_id=KEY_ID, private_key_path=path)
    assert config.credentials is not None
    assert config.credentials.key_type is KeyType.RSA


def test_credentials_and_key_arguments_together_are_refused(rsa_pem: bytes) -> None:
    credentials = Credentials.from_pem(KEY_ID, rsa_pem)
    with pytest.raises(
        ConfigurationError, match=r"^give credentials= or key_id/private_key, not both$"
    ):
        build_rest_config(credentials=credentials, key_id=KEY_ID, private_key=rsa_pem)


def test_incomplete_key_arguments_are_credentials_errors(rsa_pem: bytes) -> None:
    with pytest.raises(CredentialsError, match="private_key was given without key_id"):
        build_rest_config(private_key=rsa_pem)
    with pytest.raises(CredentialsError, match="key_id was given without private_key"):
        build_rest_config(key_id=KEY_ID)


# ---- rest_config_from_env -----------------------------------------------------------------


def test_from_env_without_variables_is_unauthenticated(no_env: pytest.MonkeyPatch) -> None:
    config = rest_config_from_env()
    assert config.credentials is None
    assert config.base_url.url == PRODUCTION_SERVERS[0]


def test_from_env_reads_the_key_and_passes_the_options(
    no_env: pytest.MonkeyPatch, ed25519_pem: bytes
) -> None:
    no_env.setenv("KALSHI_KEY_ID", KEY_ID)
    no_env.setenv("KALSHI_PRIVATE_KEY", ed25519_pem.decode())
    retry = RetryPolicy(max_attempts=2)
    config = rest_config_from_env(
        base_url="http://localhost:9000", retry=retry, timeout=3.0, user_agent="env/1"
    )
    assert config.credentials is not None
    assert config.credentials.key_type is KeyType.ED25519
    assert config.base_url.url == "http://localhost:9000"
    assert (config.retry, config.timeout, config.user_agent) == (retry, 3.0, "env/1")
    demo = rest_config_from_env(demo=True)
    assert demo.base_url.url == DEMO_SERVERS[0]
    proxy = rest_config_from_env(base_url="https://proxy.example", allow_any_host=True)
    assert proxy.base_url.host == "proxy.example"


def test_from_env_has_the_defaults_of_build_rest_config(no_env: pytest.MonkeyPatch) -> None:
    config = rest_config_from_env()
    assert (config.retry, config.timeout, config.user_agent) == (RetryPolicy(), 30.0, USER_AGENT)
    with pytest.raises(ConfigurationError, match="is not a Kalshi host"):
        rest_config_from_env(base_url="https://proxy.example")


def test_from_env_with_a_bad_variable_is_a_credentials_error(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("KALSHI_PRIVATE_KEY", "not a pem")
    with pytest.raises(CredentialsError, match="KALSHI_PRIVATE_KEY is set but KALSHI_KEY_ID"):
        rest_config_from_env()


# ---- rate_limiter_for ---------------------------------------------------------------------


def test_no_rate_limit_setting_is_no_limiter() -> None:
    assert rate_limiter_for(None) is None


def test_a_limiter_is_used_as_given() -> None:
    limiter = RateLimiter.from_limits(1, 1, 1, 1)
    assert rate_limiter_for(limiter) is limiter


@pytest.mark.parametrize("name", ["basic", " Premier ", "PRIME"])
def test_a_tier_name_builds_a_fresh_limiter(name: str) -> None:
    limiter = rate_limiter_for(name)
    assert limiter is not None
    read, write = TIERS[name.strip().lower()]
    assert limiter.bucket(Bucket.READ).limit == read
    assert limiter.bucket(Bucket.WRITE).limit == write
    assert rate_limiter_for(name) is not limiter


def test_an_unknown_tier_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no published rate limits for tier 'expert'"):
        rate_limiter_for("expert")


@pytest.mark.parametrize(
    ("rng", "logger", "message"),
    [
        (0.5, None, r"^rng must be a callable returning floats in \[0, 1\), got float$"),
        (None, "mylog", r"^logger must be a logging.Logger or logging.LoggerAdapter .*got str$"),
        (None, object(), r"^logger must be a logging.Logger .*got object$"),
    ],
)
def test_hooks_a_client_cannot_use_are_refused(rng: object, logger: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_hooks(rng, logger)


def test_hooks_a_client_can_use_are_taken() -> None:
    check_hooks(None, None)
    check_hooks(lambda: 0.5, logging.getLogger("x"))
    check_hooks(random.random, logging.LoggerAdapter(logging.getLogger("x"), {}))


@pytest.mark.parametrize("setting", [3, 1.5, b"basic"])
def test_a_rate_limit_of_the_wrong_type_is_refused(setting: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^rate_limit must be a tier name"):
        rate_limiter_for(setting)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("max_connections", "keepalive_expiry", "message"),
    [
        (-1, 5.0, r"^max_connections must be 0 \(no limit\) or more, got -1$"),
        (1.5, 5.0, r"^max_connections must be an int \(0 for no limit\), got float$"),
        (True, 5.0, r"^max_connections must be an int"),
        (10, "5", r"^keepalive_expiry must be a positive number of seconds or None, got str$"),
        (10, False, r"^keepalive_expiry must be a positive number of seconds or None, got bool$"),
        (10, 0, r"^keepalive_expiry must be a positive number of seconds or None, got 0$"),
        (10, float("nan"), r"^keepalive_expiry must be a positive number of seconds or None"),
    ],
)
def test_pool_options_an_adapter_cannot_use_are_refused(
    max_connections: object, keepalive_expiry: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_pool_options(max_connections, keepalive_expiry)


def test_pool_options_come_back_as_int_and_float() -> None:
    assert check_pool_options(0, None) == (0, None)
    assert check_pool_options(4, 2) == (4, 2.0)
    connections, expiry = check_pool_options(np.int64(4), np.float32(2.5))
    assert (type(connections), type(expiry)) == (int, float) and (connections, expiry) == (4, 2.5)
