"""`kalshi_proto.proxy`: proxy URLs and the CONNECT exchange, fed bytes by hand."""

from __future__ import annotations

import base64
import copy
import pickle
import random
import re

import pytest

from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ConfigurationError, ConnectError, LocalProtocolError, ProxyError
from kalshi_proto.proxy import ProxyTunnel, ProxyUrl, check_proxy, check_route, tunnel_for
from tests.helpers.feed import chunks_bytewise, chunks_random

OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


# ---- ProxyUrl --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "username", "password"),
    [
        ("http://proxy.example.com:3128", "proxy.example.com", 3128, "", ""),
        ("http://proxy.example.com:3128/", "proxy.example.com", 3128, "", ""),
        ("http://PROXY.Example.com", "proxy.example.com", 80, "", ""),
        ("HTTP://10.0.0.1:8080", "10.0.0.1", 8080, "", ""),
        ("http://[::1]:3128", "::1", 3128, "", ""),
        ("http://me@proxy.example.com:1", "proxy.example.com", 1, "me", ""),
        ("http://me:@proxy.example.com:1", "proxy.example.com", 1, "me", ""),
        ("http://me:s%40cret%3A1@proxy.example.com:1", "proxy.example.com", 1, "me", "s@cret:1"),
        ("http://d%C3%A9j%C3%A0:%C3%A9@proxy.example.com:1", "proxy.example.com", 1, "déjà", "é"),
    ],
)
def test_proxy_urls_are_read(url: str, host: str, port: int, username: str, password: str) -> None:
    proxy = ProxyUrl.parse(url)
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        host,
        port,
        username,
        password,
    )
    assert check_proxy(url) == proxy


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("proxy.example.com:3128", "URL has no scheme (write http:// in front)"),
        ("socks4://proxy.example.com:1080", "a socks4:// proxy is not supported here"),
        ("ftp://proxy.example.com", "a ftp:// proxy is not supported here"),
        ("http://", "URL has no host"),
        ("http://:3128", "URL has no host"),
        ("http://proxy.example.com:0", "port must be between 1 and 65535, got 0"),
        ("http://proxy.example.com:99999", "Port out of range 0-65535"),
        ("http://proxy.example.com:port", "Port could not be cast to integer value"),
        ("http://[::1", "its host or port cannot be read"),
        ("http://proxy.example.com/path", "may not have a path, query or fragment"),
        ("http://proxy.example.com?x=1", "may not have a path, query or fragment"),
        ("http://proxy.example.com#top", "may not have a path, query or fragment"),
        ("http://proxy.example.com/?", "may not have a path, query or fragment"),
        ("http://proxy .example.com", "URL holds whitespace"),
        ("http://proxy.example.com\n", "URL holds whitespace"),
        ("http://pro_xy.example.com", "invalid proxy host"),
        ("http://:secret@proxy.example.com", "has a password but no user name"),
        ("http://me:%FF@proxy.example.com", "not UTF-8 once percent-decoded"),
        ("http://a%3Ab:c@proxy.example.com", "holds a ':', which Basic authentication"),
        ("http://me:a%0Db@proxy.example.com", "proxy password holds a control character"),
    ],
)
def test_bad_proxy_urls_are_refused_without_quoting_them(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        ProxyUrl.parse(url)
    assert message in str(info.value)
    assert "secret" not in str(info.value)
    assert "%FF" not in str(info.value) and "a%0Db" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "port", "is_tls", "is_socks"),
    [
        ("http://proxy.example.com", 80, False, False),
        ("https://proxy.example.com", 443, True, False),
        ("HTTPS://proxy.example.com:8443", 8443, True, False),
        ("socks5://proxy.example.com", 1080, False, True),
        ("socks5h://proxy.example.com", 1080, False, True),
    ],
)
def test_each_scheme_has_its_port_and_kind(
    url: str, port: int, is_tls: bool, is_socks: bool
) -> None:
    proxy = ProxyUrl.parse(url)
    assert (proxy.port, proxy.is_tls, proxy.is_socks) == (port, is_tls, is_socks)


def test_an_https_proxy_opens_its_tunnel_with_a_connect_carrying_its_credentials() -> None:
    proxy = ProxyUrl.parse("https://me:s%40cret@proxy.example.com")
    tunnel = tunnel_for(proxy, "api.example.com", 443, user_agent="bot/1")
    assert isinstance(tunnel, ProxyTunnel)
    token = base64.b64encode(b"me:s@cret").decode()
    assert tunnel.data_to_send() == (
        b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
        b"User-Agent: bot/1\r\nProxy-Authorization: Basic " + token.encode() + b"\r\n\r\n"
    )
    assert str(proxy) == "https://***@proxy.example.com:443"


@pytest.mark.parametrize("value", [3128, b"http://proxy.example.com", ("proxy", 3128), True])
def test_check_proxy_refuses_other_types(value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"got {type(value).__name__}$"):
        check_proxy(value)


def test_check_proxy_takes_none_and_a_proxy_url() -> None:
    proxy = ProxyUrl("proxy.example.com", 3128)
    assert check_proxy(None) is None
    assert check_proxy(proxy) is proxy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": 1}, "proxy host must be a str, got int"),
        ({"host": "Proxy"}, "invalid proxy host"),
        ({"port": "3128"}, "proxy port must be an int, got str"),
        ({"port": True}, "proxy port must be an int, got bool"),
        ({"port": 65536}, "between 1 and 65535, got 65536"),
        ({"username": b"me"}, "proxy username must be a str, got bytes"),
        ({"password": "x"}, "proxy password was given without a username"),
        ({"username": "me\r\nX-Evil: 1"}, "proxy username holds a control character"),
        (
            {"scheme": "ftp"},
            "proxy scheme must be one of 'http', 'https', 'socks5', 'socks5h', got",
        ),
        ({"scheme": "socks5", "username": "u" * 256}, "username is longer than the 255 bytes"),
        (
            {"scheme": "socks5h", "username": "u", "password": "é" * 128},
            "password is longer than the 255 bytes SOCKS5 can carry",
        ),
    ],
)
def test_proxy_url_fields_are_checked(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"host": "proxy.example.com", "port": 3128, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        ProxyUrl(**fields)  # type: ignore[arg-type]


def test_a_proxy_url_never_shows_its_credentials() -> None:
    proxy = ProxyUrl.parse("http://alice:hunter2@proxy.example.com:3128")
    assert str(proxy) == "http://***@proxy.example.com:3128"
    assert repr(proxy) == "ProxyUrl('http://***@proxy.example.com:3128')"
    tunnel = ProxyTunnel(proxy, "api.example.com", 443)
    for text in (str(proxy), repr(proxy), repr(tunnel), repr(check_proxy(proxy))):
        assert "alice" not in text and "hunter2" not in text
    assert str(ProxyUrl("::1", 8080)) == "http://[::1]:8080"


def test_a_proxy_url_copies_and_pickles_whole() -> None:
    proxy = ProxyUrl.parse("http://alice:hunter2@proxy.example.com:3128")
    assert pickle.loads(pickle.dumps(proxy)) == proxy
    assert copy.copy(proxy) == proxy
    assert proxy != ProxyUrl.parse("http://alice:other@proxy.example.com:3128")


@pytest.mark.parametrize(
    ("proxy_host", "base_url", "refused"),
    [
        ("proxy.example.com", "https://127.0.0.1:8443/trade-api/v2", True),
        ("2001:db8::1", "http://localhost:8080/trade-api/v2", True),
        ("127.0.0.1", "https://127.0.0.1:8443/trade-api/v2", False),
        ("::1", "https://localhost:8443/trade-api/v2", False),
        ("localhost", "https://[::1]:8443/trade-api/v2", False),
        ("proxy.example.com", "https://external-api.kalshi.com/trade-api/v2", False),
        ("127.0.0.1", "https://external-api.kalshi.com/trade-api/v2", False),
    ],
)
def test_a_loopback_api_is_reached_only_through_a_loopback_proxy(
    proxy_host: str, base_url: str, refused: bool
) -> None:
    base = resolve_base_url(base_url=base_url)
    if refused:
        with pytest.raises(ConfigurationError, match=r"would reach the proxy's own loopback"):
            check_route(proxy_host, base)
    else:
        check_route(proxy_host, base)


# ---- ProxyTunnel -----------------------------------------------------------------------------


def _tunnel(proxy: str = "http://proxy.example.com:3128", **kwargs: str | None) -> ProxyTunnel:
    return ProxyTunnel(ProxyUrl.parse(proxy), "api.example.com", 443, **kwargs)


def test_the_connect_request_names_the_target_and_nothing_more() -> None:
    tunnel = _tunnel()
    assert tunnel.data_to_send() == (
        b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n"
    )
    assert tunnel.data_to_send() == b""


def test_the_connect_request_carries_the_user_agent_and_basic_credentials() -> None:
    tunnel = _tunnel("http://d%C3%A9j%C3%A0:s%40cret@proxy.example.com:3128", user_agent="ua/1")
    token = base64.b64encode("déjà:s@cret".encode()).decode()
    assert tunnel.data_to_send().decode() == (
        "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
        f"User-Agent: ua/1\r\nProxy-Authorization: Basic {token}\r\n\r\n"
    )


def test_an_ipv6_target_is_bracketed() -> None:
    tunnel = ProxyTunnel(ProxyUrl("proxy.example.com"), "::1", 8443)
    assert tunnel.data_to_send().startswith(b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n")
    assert tunnel.target == "[::1]:8443"


@pytest.mark.parametrize(
    "answer",
    [
        OK,
        b"HTTP/1.0 200 Connection established\r\nProxy-Agent: test\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    ],
)
@pytest.mark.parametrize("split", ["whole", "bytewise", "random"])
def test_a_2xx_answer_opens_the_tunnel_however_it_is_split(answer: bytes, split: str) -> None:
    tunnel = _tunnel()
    tunnel.data_to_send()
    if split == "whole":
        chunks = [answer]
    elif split == "bytewise":
        chunks = list(chunks_bytewise(answer))
    else:
        chunks = list(chunks_random(answer, random.Random(len(answer))))
    results = [tunnel.receive_data(chunk) for chunk in chunks]
    assert results == [False] * (len(chunks) - 1) + [True]
    assert tunnel.is_open
    assert "(open)" in repr(tunnel)


def test_no_bytes_are_taken_once_the_tunnel_is_open() -> None:
    tunnel = _tunnel()
    assert tunnel.receive_data(OK)
    with pytest.raises(LocalProtocolError, match="the tunnel is open"):
        tunnel.receive_data(b"\x16\x03\x01")


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            407,
            "HTTP 407 Proxy Authentication Required (it wants credentials: "
            "http://user:password@host:port)",
        ),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", 403, "HTTP 403 Forbidden"),
        (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\nnope!",
            502,
            "HTTP 502 Bad Gateway",
        ),
        (b"HTTP/1.1 301 \r\nLocation: /x\r\n\r\n", 301, "HTTP 301"),
    ],
)
def test_any_other_answer_is_a_refusal_with_its_status(
    answer: bytes, status: int, message: str
) -> None:
    tunnel = _tunnel()
    with pytest.raises(ProxyError) as info:
        tunnel.receive_data(answer)
    assert info.value.status == status
    assert str(info.value) == (
        f"the proxy proxy.example.com:3128 refused the tunnel to api.example.com:443: {message}"
    )
    assert isinstance(info.value, ConnectError)
    assert not tunnel.is_open


def test_a_407_to_given_credentials_says_they_were_refused() -> None:
    tunnel = _tunnel("http://alice:hunter2@proxy.example.com:3128")
    with pytest.raises(ProxyError, match=r"refused the user name and password") as info:
        tunnel.receive_data(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    assert "hunter2" not in str(info.value) and "alice" not in str(info.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "closed the connection before it answered the CONNECT to api.example.com:443"),
        (b"HTTP/1.1 200 OK\r\n", "closed the connection before it answered"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "sent a broken answer to the CONNECT"),
        (b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n", "sent a broken answer to the CONNECT"),
    ],
)
def test_an_answer_that_is_not_http_or_never_comes_is_a_proxy_error(
    answer: bytes, message: str
) -> None:
    tunnel = _tunnel()
    with pytest.raises(ProxyError, match=message) as info:
        tunnel.receive_data(answer)
        tunnel.receive_data(b"")  # the proxy closes
    assert info.value.status is None


def test_an_endless_answer_head_is_refused() -> None:
    tunnel = _tunnel()
    tunnel.receive_data(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProxyError, match="broken answer"):
        for _ in range(100):
            tunnel.receive_data(b"X-Filler: " + b"a" * 1000 + b"\r\n")


def test_bytes_past_the_answer_are_refused() -> None:
    tunnel = _tunnel()
    with pytest.raises(ProxyError, match="sent 3 bytes past its answer, before the TLS handshake"):
        tunnel.receive_data(OK + b"abc")


def test_a_failed_tunnel_takes_no_more_bytes() -> None:
    tunnel = _tunnel()
    with pytest.raises(ProxyError):
        tunnel.receive_data(b"garbage\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="the tunnel failed already"):
        tunnel.receive_data(OK)


@pytest.mark.parametrize("data", [bytearray(OK), memoryview(OK)])
def test_bytes_like_data_is_taken(data: bytes) -> None:
    assert _tunnel().receive_data(data)


def test_data_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        _tunnel().receive_data(OK.decode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("http://proxy.example.com", "api.example.com", 443), TypeError, "got str"),
        ((ProxyUrl("proxy.example.com"), "API", 443), ConfigurationError, "invalid tunnel host"),
        ((ProxyUrl("proxy.example.com"), 1, 443), ConfigurationError, "not a str"),
        ((ProxyUrl("proxy.example.com"), "api.example.com", 0), ConfigurationError, "got 0"),
        ((ProxyUrl("proxy.example.com"), "api.example.com", True), ConfigurationError, "True"),
    ],
)
def test_tunnel_arguments_are_checked(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ProxyTunnel(*args)  # type: ignore[arg-type]


def test_proxy_errors_pickle_with_their_status() -> None:
    error = ProxyError("refused", status=407)
    error.add_note("not retried")
    copied = pickle.loads(pickle.dumps(error))
    assert (type(copied), str(copied), copied.status, copied.__notes__) == (
        ProxyError,
        "refused",
        407,
        ["not retried"],
    )
