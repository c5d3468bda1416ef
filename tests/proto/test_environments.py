"""Tests for kalshi_proto.environments: the spec's servers, BaseUrl and the host policy."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from kalshi_proto.environments import (
    DEMO_SERVERS,
    PRODUCTION_SERVERS,
    BaseUrl,
    resolve_base_url,
)
from kalshi_proto.errors import ConfigurationError

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openapi.yaml"


def spec_servers() -> list[str]:
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is not available")
    text = SPEC.read_text(encoding="utf-8")
    block = re.search(r"^servers:\n((?:[ \t]+.*\n)+)", text, re.MULTILINE)
    assert block is not None
    return re.findall(r"- url: (\S+)", block.group(1))


# --- servers ------------------------------------------------------------------------------------


def test_servers_match_the_spec() -> None:
    assert list(PRODUCTION_SERVERS + DEMO_SERVERS) == spec_servers()


def test_server_constants() -> None:
    assert PRODUCTION_SERVERS == (
        "https://external-api.kalshi.com/trade-api/v2",
        "https://api.elections.kalshi.com/trade-api/v2",
    )
    assert DEMO_SERVERS == (
        "https://external-api.demo.kalshi.co/trade-api/v2",
        "https://demo-api.kalshi.co/trade-api/v2",
    )


def test_default_is_the_first_production_server() -> None:
    url = resolve_base_url()
    assert url == BaseUrl("https", "external-api.kalshi.com", 443, "/trade-api/v2")
    assert url.url == PRODUCTION_SERVERS[0]
    assert str(url) == PRODUCTION_SERVERS[0]


def test_demo_is_the_first_demo_server() -> None:
    url = resolve_base_url(demo=True)
    assert url.url == DEMO_SERVERS[0]
    assert url.host == "external-api.demo.kalshi.co"


@pytest.mark.parametrize("server", PRODUCTION_SERVERS + DEMO_SERVERS)
def test_every_spec_server_resolves_to_itself(server: str) -> None:
    url = resolve_base_url(base_url=server)
    assert url.url == server
    assert url.scheme == "https"
    assert url.port == 443
    assert url.prefix == "/trade-api/v2"
    assert url.path_for("/portfolio/orders") == "/trade-api/v2/portfolio/orders"
    assert not url.is_loopback


# --- BaseUrl ------------------------------------------------------------------------------------


def test_base_url_properties() -> None:
    url = BaseUrl("https", "external-api.kalshi.com", prefix="/trade-api/v2")
    assert url.port == 443
    assert url.origin == "https://external-api.kalshi.com"
    assert url.host_header == "external-api.kalshi.com"
    assert url.url == "https://external-api.kalshi.com/trade-api/v2"
    assert url.path_for("/markets?limit=5") == "/trade-api/v2/markets?limit=5"


def test_base_url_with_a_port_and_no_prefix() -> None:
    url = BaseUrl("https", "api.elections.kalshi.com", 8443)
    assert url.origin == "https://api.elections.kalshi.com:8443"
    assert url.host_header == "api.elections.kalshi.com:8443"
    assert url.url == "https://api.elections.kalshi.com:8443"
    assert url.path_for("/markets") == "/markets"


@pytest.mark.parametrize("port", [1, 65535])
def test_base_url_takes_the_lowest_and_highest_port(port: int) -> None:
    assert BaseUrl("https", "external-api.kalshi.com", port).origin == (
        f"https://external-api.kalshi.com:{port}"
    )


def test_base_url_http_default_port_and_ipv6() -> None:
    url = BaseUrl("http", "::1", prefix="/trade-api/v2")
    assert url.port == 80
    assert url.host_header == "[::1]"
    assert url.origin == "http://[::1]"
    other = BaseUrl("http", "::1", 8080)
    assert other.host_header == "[::1]:8080"
    assert other.url == "http://[::1]:8080"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::2", False),
        ("128.0.0.1", False),
        ("203.0.113.7", False),
        ("localhost.kalshi.com", False),
        ("external-api.kalshi.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert BaseUrl("https", host).is_loopback is loopback


def test_path_for_needs_a_leading_slash() -> None:
    with pytest.raises(ValueError, match="path must start with '/', got 'markets'"):
        resolve_base_url().path_for("markets")


def test_base_url_is_frozen_and_hashable() -> None:
    url = resolve_base_url()
    with pytest.raises(dataclasses.FrozenInstanceError):
        url.host = "other.example.com"  # type: ignore[misc]
    assert hash(url) == hash(resolve_base_url())
    assert url != resolve_base_url(demo=True)
    assert not hasattr(url, "__dict__")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scheme": "ftp", "host": "h.kalshi.com"}, "scheme must be 'https' or 'http', got 'ftp'"),
        ({"scheme": "https", "host": ""}, "invalid host: the host is empty"),
        ({"scheme": "https", "host": "Upper.kalshi.com"}, "is not a valid lower-case host name"),
        ({"scheme": "https", "host": "bad_host.kalshi.com"}, "is not a valid lower-case host"),
        ({"scheme": "https", "host": "kalshi.com."}, "invalid host: 'kalshi.com.' ends with a dot: remove it"),
        ({"scheme": "https", "host": "-x.kalshi.com"}, "is not a valid lower-case host name"),
        ({"scheme": "https", "host": "bücher.example"}, "use punycode for IDNs"),
        ({"scheme": "https", "host": "::zz"}, "invalid host: '::zz' is not a valid IPv6 address"),
        (
            {"scheme": "https", "host": "h.kalshi.com", "port": "443"},
            "port must be an int, got str",
        ),
        (
            {"scheme": "https", "host": "h.kalshi.com", "port": True},
            "port must be an int, got bool",
        ),
        ({"scheme": "https", "host": "h.kalshi.com", "port": -1}, "between 1 and 65535, got -1"),
        ({"scheme": "https", "host": "h.kalshi.com", "port": 65536}, "between 1 and 65535"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/v2/"}, "prefix must be empty or"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "v2"}, "prefix must be empty or"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/a b"}, "URL path characters"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/a/./v2"}, "'.' or '..' segments"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/a/../v2"}, "'.' or '..' segments"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/a/%2E%2e"}, "'.' or '..' segm"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/.."}, "'.' or '..' segments"),
        ({"scheme": "https", "host": "h.kalshi.com", "prefix": "/a//v2"}, "empty, '.' or '..'"),
        ({"scheme": "http", "host": "h.kalshi.com"}, "plain http is allowed only to a loopback"),
    ],
)
def test_base_url_validation(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        BaseUrl(**kwargs)  # type: ignore[arg-type]
    assert expected in str(info.value)


# --- resolve_base_url: accepted -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://localhost:8080/trade-api/v2", BaseUrl("http", "localhost", 8080, "/trade-api/v2")),
        ("http://127.0.0.1:9000", BaseUrl("http", "127.0.0.1", 9000, "")),
        ("http://127.3.4.5/", BaseUrl("http", "127.3.4.5", 80, "")),
        ("http://[::1]:8080/trade-api/v2/", BaseUrl("http", "::1", 8080, "/trade-api/v2")),
        ("https://localhost:8443/x//", BaseUrl("https", "localhost", 8443, "/x")),
        ("https://other-api.kalshi.com", BaseUrl("https", "other-api.kalshi.com")),
        ("https://EXTERNAL-API.Kalshi.COM/trade-api/v2", resolve_base_url()),
        ("  https://external-api.kalshi.com/trade-api/v2\n", resolve_base_url()),
        (
            "https://new-api.kalshi.com/trade-api/v3",
            BaseUrl("https", "new-api.kalshi.com", 443, "/trade-api/v3"),
        ),
        ("https://a.b.kalshi.co:444/p", BaseUrl("https", "a.b.kalshi.co", 444, "/p")),
        (
            "https://api.klear.kalshi.com/klear-api/v1",
            BaseUrl("https", "api.klear.kalshi.com", 443, "/klear-api/v1"),
        ),
        ("HTTPS://external-api.kalshi.com:443/trade-api/v2", resolve_base_url()),
    ],
)
def test_accepted_base_urls(base_url: str, expected: BaseUrl) -> None:
    assert resolve_base_url(base_url=base_url) == expected


@pytest.mark.parametrize(
    ("base_url", "suggested"),
    [
        ("https://external-api.kalshi.com", "https://external-api.kalshi.com/trade-api/v2"),
        ("https://api.elections.kalshi.com/", "https://api.elections.kalshi.com/trade-api/v2"),
        ("https://external-api.demo.kalshi.co:443//", DEMO_SERVERS[0]),
        ("https://demo-api.kalshi.co", "https://demo-api.kalshi.co/trade-api/v2"),
    ],
)
def test_a_spec_host_without_a_path_is_refused_with_the_spec_url(
    base_url: str, suggested: str
) -> None:
    host = base_url.split("/")[2].split(":")[0]
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(base_url=base_url)
    assert str(info.value) == (
        f"base_url has no path: the API on {host} is under a path, as in "
        f"base_url={suggested!r}"
    )


def test_prefix_is_kept_as_given() -> None:
    url = resolve_base_url(base_url="http://localhost:1234/Custom/Prefix%20x")
    assert url.prefix == "/Custom/Prefix%20x"
    assert url.path_for("/markets") == "/Custom/Prefix%20x/markets"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://proxy.example.com/trade-api/v2",
        "https://203.0.113.7:8443",
        "https://[2001:db8::1]/x",
    ],
)
def test_any_host_needs_allow_any_host(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="allow_any_host=True"):
        resolve_base_url(base_url=base_url)
    url = resolve_base_url(base_url=base_url, allow_any_host=True)
    assert url.scheme == "https"
    assert not url.is_loopback


def test_ipv6_host_with_allow_any_host() -> None:
    url = resolve_base_url(base_url="https://[2001:db8::1]:8443/x", allow_any_host=True)
    assert url.host == "2001:db8::1"
    assert url.host_header == "[2001:db8::1]:8443"
    assert url.url == "https://[2001:db8::1]:8443/x"


# --- resolve_base_url: refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "kalshi.com.evil.example",
        "evilkalshi.com",
        "kalshi.com",
        "kalshi.co",
        "external-api.kalshi.com.example",
        "kalshi.co.uk",
    ],
)
def test_non_kalshi_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(base_url=f"https://{host}/trade-api/v2")
    message = str(info.value)
    assert f"host {host!r} is not a Kalshi host" in message
    assert "*.kalshi.com" in message
    assert "loopback" in message


@pytest.mark.parametrize(
    "base_url",
    [
        "http://external-api.kalshi.com/trade-api/v2",
        "http://proxy.example.com/trade-api/v2",
        "http://203.0.113.7:8080",
        "http://[2001:db8::1]/x",
    ],
)
def test_plain_http_only_to_loopback(base_url: str) -> None:
    for allow_any_host in (False, True):
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url(base_url=base_url, allow_any_host=allow_any_host)
        message = str(info.value)
        assert "plain http is allowed only to a loopback host" in message
        assert "clear text" in message
        assert "use https" in message


def test_demo_and_base_url_contradict() -> None:
    with pytest.raises(ConfigurationError, match="demo=True and base_url contradict") as info:
        resolve_base_url(demo=True, base_url=DEMO_SERVERS[0])
    assert str(info.value).endswith(f"(for demo, base_url={DEMO_SERVERS[0]!r})")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (b"https://external-api.kalshi.com", "base_url must be a str, got bytes"),
        ("", "base_url is empty"),
        ("   ", "base_url is empty"),
        ("http://[::1", "base_url is not a valid URL"),
        ("https://[::zz]/x", "base_url is not a valid URL"),
        ("ftp://external-api.kalshi.com/x", "got scheme 'ftp'"),
        ("external-api.kalshi.com/trade-api/v2", "got scheme ''"),
        ("//external-api.kalshi.com/trade-api/v2", "must start with https://"),
        ("https://external-api.kalshi.com/trade-api/v2?x=1", "must not have a query string"),
        ("https://external-api.kalshi.com/trade-api/v2?", "must not have a query string"),
        ("https://external-api.kalshi.com/trade-api/v2#top", "must not have a fragment"),
        ("https://external-api.kalshi.com/#", "must not have a fragment"),
        ("https:///trade-api/v2", "base_url has no host"),
        ("https://:443/trade-api/v2", "base_url has no host"),
        ("https://external-api.kalshi.com:https/x", "base_url has an invalid port"),
        ("https://external-api.kalshi.com:70000/x", "base_url has an invalid port"),
        ("https://external-api.kalshi.com:0/x", "base_url has an invalid port (0)"),
        ("https://bad_host.kalshi.com/x", "is not a valid lower-case host name"),
        ("https://external-api.kalshi.com/a b", "URL path characters"),
        # httpx would send /trade-api/v2/..., signed as /trade-api/./v2/...
        ("https://external-api.kalshi.com/trade-api/./v2", "'.' or '..' segments"),
        ("https://external-api.kalshi.com/trade-api/../v2", "'.' or '..' segments"),
        ("https://external-api.kalshi.com/trade-api//v2/", "empty, '.' or '..' segments"),
    ],
)
def test_malformed_base_urls(base_url: object, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(base_url=base_url)  # type: ignore[arg-type]
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://user:hunter2@external-api.kalshi.com/trade-api/v2",
        "https://hunter2@external-api.kalshi.com",
        "http://user:hunter2@localhost:8080",
    ],
)
def test_user_info_is_refused_without_echoing_it(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(base_url=base_url, allow_any_host=True)
    assert "must not contain user info" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value)


@pytest.mark.parametrize("name", ["demo", "allow_any_host"])
@pytest.mark.parametrize("value", ["no", "false", 0, 1, None, [0]])
def test_the_switches_take_only_a_bool(name: str, value: object) -> None:
    # A string from a config file is truthy: "no" would have turned the host policy off, and
    # "false" would have picked the demo servers.
    with pytest.raises(ConfigurationError, match=rf"^{name} must be True or False, got "):
        resolve_base_url(**{name: value})  # type: ignore[arg-type]


def test_a_host_ending_with_a_dot_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ConfigurationError, match=r"'api\.elections\.kalshi\.com\.' ends with a dot: remove it"
    ):
        resolve_base_url(base_url="https://api.elections.kalshi.com./trade-api/v2")
