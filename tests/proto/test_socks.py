"""`kalshi_proto.proxy` with a SOCKS5 proxy: its URLs and the handshake, fed bytes by hand.

The bytes expected here are written out from RFC 1928 (the method choice, the connect request
and its reply) and RFC 1929 (user name and password), not built with the code under test.
"""

from __future__ import annotations

import pickle
import random

import pytest

from kalshi_proto.errors import ConfigurationError, ConnectError, LocalProtocolError, ProxyError
from kalshi_proto.proxy import (
    ProxyTunnel,
    ProxyUrl,
    Socks5Tunnel,
    check_proxy,
    tunnel_for,
)
from tests.helpers.feed import chunks_bytewise, chunks_random

GREETING = b"\x05\x01\x00"  # version 5, one method: no authentication
GREETING_WITH_PASSWORD = b"\x05\x01\x02"  # version 5, one method: user name and password
NO_AUTHENTICATION = b"\x05\x00"
USER_PASSWORD = b"\x05\x02"
AUTHENTICATED = b"\x01\x00"
# A success reply bound to 10.0.0.1:1080 (any address will do: the client ignores it).
SUCCESS = b"\x05\x00\x00\x01\x0a\x00\x00\x01\x04\x38"
CONNECT_API = b"\x05\x01\x00\x03\x0fapi.example.com\x01\xbb"  # api.example.com:443 by name


def _tunnel(proxy: str = "socks5://proxy.example.com") -> Socks5Tunnel:
    tunnel = tunnel_for(ProxyUrl.parse(proxy), "api.example.com", 443)
    assert isinstance(tunnel, Socks5Tunnel)
    return tunnel


def _open(tunnel: Socks5Tunnel, *answers: bytes) -> list[bytes]:
    # Run the handshake with the proxy's ``answers``; the bytes the tunnel sent at each step.
    sent = [tunnel.data_to_send()]
    for answer in answers:
        tunnel.receive_data(answer)
        sent.append(tunnel.data_to_send())
    return sent


# ---- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "port", "text"),
    [
        ("socks5://proxy.example.com", "socks5", 1080, "socks5://proxy.example.com:1080"),
        ("SOCKS5H://proxy.example.com:9050", "socks5h", 9050, "socks5h://proxy.example.com:9050"),
        ("socks5://u:p@[::1]:1081/", "socks5", 1081, "socks5://***@[::1]:1081"),
        ("http://proxy.example.com", "http", 80, "http://proxy.example.com:80"),
    ],
)
def test_socks5_urls_are_read(url: str, scheme: str, port: int, text: str) -> None:
    proxy = ProxyUrl.parse(url)
    assert (proxy.scheme, proxy.port, str(proxy)) == (scheme, port, text)
    assert proxy.is_socks is (scheme != "http")
    assert check_proxy(url) == proxy
    assert pickle.loads(pickle.dumps(proxy)) == proxy


def test_a_port_left_out_is_the_schemes_own() -> None:
    assert ProxyUrl("proxy.example.com").port == 80
    assert ProxyUrl("proxy.example.com", scheme="socks5").port == 1080
    assert ProxyUrl("proxy.example.com", 0, scheme="socks5h").port == 1080
    assert ProxyUrl("proxy.example.com", 9050, scheme="socks5h").port == 9050


def test_a_socks5_user_name_may_hold_a_colon() -> None:
    # Basic authentication cannot carry one; RFC 1929 can.
    proxy = ProxyUrl.parse("socks5://a%3Ab:secret@proxy.example.com")
    assert (proxy.username, proxy.password) == ("a:b", "secret")
    with pytest.raises(ConfigurationError, match="which Basic authentication cannot carry"):
        ProxyUrl.parse("http://a%3Ab:secret@proxy.example.com")


def test_the_factory_picks_the_tunnel_of_the_scheme() -> None:
    http = tunnel_for(ProxyUrl("proxy.example.com"), "api.example.com", 443, user_agent="ua/1")
    assert isinstance(http, ProxyTunnel)
    assert b"User-Agent: ua/1" in http.data_to_send()
    socks = tunnel_for(ProxyUrl("proxy.example.com", scheme="socks5"), "api.example.com", 443)
    assert isinstance(socks, Socks5Tunnel)


def test_each_tunnel_refuses_the_other_kind_of_proxy() -> None:
    with pytest.raises(ConfigurationError, match="takes a Socks5Tunnel; tunnel_for picks"):
        ProxyTunnel(ProxyUrl("proxy.example.com", scheme="socks5"), "api.example.com", 443)
    with pytest.raises(ConfigurationError, match="takes a ProxyTunnel; tunnel_for picks"):
        Socks5Tunnel(ProxyUrl("proxy.example.com"), "api.example.com", 443)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("socks5://proxy.example.com", "api.example.com", 443), TypeError, "got str"),
        ((ProxyUrl("p.example.com", scheme="socks5"), "API", 443), ConfigurationError, "host"),
        ((ProxyUrl("p.example.com", scheme="socks5"), "a.example.com", 0), ConfigurationError, "0"),
        (
            (ProxyUrl("p.example.com", scheme="socks5"), ".".join(["a" * 60] * 5), 443),
            ConfigurationError,
            "longer than the 255 bytes SOCKS5 can carry",
        ),
    ],
)
def test_tunnel_arguments_are_checked(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Socks5Tunnel(*args)  # type: ignore[arg-type]


def test_a_tunnel_never_shows_the_credentials() -> None:
    tunnel = _tunnel("socks5://alice:hunter2@proxy.example.com")
    assert repr(tunnel) == (
        "<Socks5Tunnel to api.example.com:443 via socks5://***@proxy.example.com:1080 (opening)>"
    )


# ---- the handshake ---------------------------------------------------------------------------


def test_without_credentials_the_host_name_goes_to_the_proxy() -> None:
    tunnel = _tunnel()
    sent = _open(tunnel, NO_AUTHENTICATION, SUCCESS)
    assert sent == [GREETING, CONNECT_API, b""]
    assert tunnel.is_open
    assert repr(tunnel).endswith("(open)>")


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_both_schemes_send_the_name_for_the_proxy_to_resolve(scheme: str) -> None:
    assert _open(_tunnel(f"{scheme}://proxy.example.com"), NO_AUTHENTICATION)[1] == CONNECT_API


@pytest.mark.parametrize(
    ("host", "destination"),
    [
        ("127.0.0.1", b"\x01\x7f\x00\x00\x01"),
        ("::1", b"\x04" + b"\x00" * 15 + b"\x01"),
        ("localhost", b"\x03\x09localhost"),
    ],
)
def test_an_address_goes_as_an_address(host: str, destination: bytes) -> None:
    tunnel = Socks5Tunnel(ProxyUrl("127.0.0.1", scheme="socks5"), host, 8443)
    assert _open(tunnel, NO_AUTHENTICATION)[1] == b"\x05\x01\x00" + destination + b"\x20\xfb"


def test_credentials_go_as_rfc_1929_asks() -> None:
    tunnel = _tunnel("socks5://d%C3%A9j%C3%A0:s%40cret@proxy.example.com")
    sent = _open(tunnel, USER_PASSWORD, AUTHENTICATED, SUCCESS)
    user, password = "déjà".encode(), b"s@cret"
    assert sent == [
        GREETING_WITH_PASSWORD,
        b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password,
        CONNECT_API,
        b"",
    ]
    assert tunnel.is_open


def test_a_user_name_without_a_password_sends_an_empty_one() -> None:
    sent = _open(_tunnel("socks5://alice@proxy.example.com"), USER_PASSWORD)
    assert sent[1] == b"\x01\x05alice\x00"


@pytest.mark.parametrize(
    "reply",
    [
        SUCCESS,
        b"\x05\x00\x00\x04" + bytes(range(16)) + b"\x04\x38",  # bound to an IPv6 address
        b"\x05\x00\x00\x03\x0bexample.com\x04\x38",  # bound to a name
        b"\x05\x00\x00\x03\x00\x04\x38",  # an empty name
    ],
)
@pytest.mark.parametrize("split", ["whole", "bytewise", "random"])
def test_the_tunnel_opens_however_the_answers_are_split(reply: bytes, split: str) -> None:
    tunnel = _tunnel("socks5://alice:secret@proxy.example.com")
    answers = USER_PASSWORD + AUTHENTICATED + reply
    if split == "whole":
        chunks = [answers]
    elif split == "bytewise":
        chunks = list(chunks_bytewise(answers))
    else:
        chunks = list(chunks_random(answers, random.Random(len(reply))))
    sent = [tunnel.data_to_send()]
    results = []
    for chunk in chunks:
        results.append(tunnel.receive_data(chunk))
        sent.append(tunnel.data_to_send())
    assert results == [False] * (len(chunks) - 1) + [True]
    assert b"".join(sent) == GREETING_WITH_PASSWORD + b"\x01\x05alice\x06secret" + CONNECT_API


def test_no_bytes_are_taken_once_the_tunnel_is_open() -> None:
    tunnel = _tunnel()
    _open(tunnel, NO_AUTHENTICATION, SUCCESS)
    with pytest.raises(LocalProtocolError, match="the tunnel is open"):
        tunnel.receive_data(b"\x16\x03\x01")


@pytest.mark.parametrize(
    ("code", "name", "final"),
    [
        (1, "general SOCKS server failure", False),
        (2, "connection not allowed by ruleset", True),
        (3, "network unreachable", False),
        (4, "host unreachable", False),
        (5, "connection refused", False),
        (6, "TTL expired", False),
        (7, "command not supported", True),
        (8, "address type not supported", True),
        (9, "an unassigned code", False),
    ],
)
def test_a_failure_reply_is_a_refusal_with_its_code(code: int, name: str, final: bool) -> None:
    tunnel = _tunnel()
    _open(tunnel, NO_AUTHENTICATION)
    with pytest.raises(ProxyError) as info:
        tunnel.receive_data(bytes([5, code]))  # the code decides; the rest need not come
    assert str(info.value) == (
        "the proxy proxy.example.com:1080 refused the connection to api.example.com:443: "
        f"SOCKS5 reply {code} ({name})"
    )
    assert (info.value.reply, info.value.status) == (code, None)
    assert isinstance(info.value, ConnectError)
    assert (info.value.final_reason is not None) is final
    assert not tunnel.is_open


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("socks5://proxy.example.com", "wants credentials: socks5://user:password@host:port"),
        (
            "socks5://alice:secret@proxy.example.com",
            "does not take the user name and password of the proxy URL",
        ),
    ],
)
def test_no_acceptable_method_is_a_final_refusal(proxy: str, message: str) -> None:
    with pytest.raises(ProxyError, match=message) as info:
        _tunnel(proxy).receive_data(b"\x05\xff")
    assert info.value.final_reason == "the proxy would refuse again"


def test_refused_credentials_are_a_final_refusal_that_does_not_show_them() -> None:
    tunnel = _tunnel("socks5://alice:hunter2@proxy.example.com")
    _open(tunnel, USER_PASSWORD)
    with pytest.raises(ProxyError, match="refused the user name and password") as info:
        tunnel.receive_data(b"\x01\x01")
    assert info.value.final_reason == "the proxy would refuse the same credentials again"
    assert "alice" not in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("proxy", "answers", "message"),
    [
        ("socks5://p.example.com", [b""], "closed the connection during the SOCKS5 handshake"),
        ("socks5://p.example.com", [b"\x05"], "closed the connection during the SOCKS5 handshake"),
        (
            "socks5://p.example.com",
            [b"HTTP/1.1 400 Bad Request\r\n\r\n"],
            r"did not answer as a SOCKS5 proxy \(it looks like an HTTP proxy: give its URL as",
        ),
        ("socks5://p.example.com", [b"\x04\x5a"], "did not answer as a SOCKS5 proxy$"),
        ("socks5://p.example.com", [b"\x05\x02"], "chose authentication method 2, which was not"),
        ("socks5://u:p@p.example.com", [b"\x05\x00"], "chose authentication method 0, which"),
        ("socks5://p.example.com", [b"\x05\x00", b"\x04\x00"], "sent a reply that is not SOCKS5"),
        (
            "socks5://p.example.com",
            [b"\x05\x00", b"\x05\x00\x00\x02\x00"],
            "sent a reply with an unknown address type 2",
        ),
        (
            "socks5://p.example.com",
            [b"\x05\x00", SUCCESS + b"abc"],
            "sent 3 bytes past its reply, before the TLS handshake began",
        ),
        ("socks5://p.example.com", [b"\x05\x00", SUCCESS[:6], b""], "closed the connection"),
    ],
)
def test_a_broken_handshake_is_a_proxy_error(
    proxy: str, answers: list[bytes], message: str
) -> None:
    tunnel = _tunnel(proxy)
    with pytest.raises(ProxyError, match=message) as info:
        for answer in answers:
            tunnel.receive_data(answer)
        tunnel.receive_data(b"")  # the proxy closes
    assert (info.value.status, info.value.reply, info.value.final_reason) == (None, None, None)


def test_a_failed_tunnel_takes_no_more_bytes() -> None:
    tunnel = _tunnel()
    with pytest.raises(ProxyError):
        tunnel.receive_data(b"\x04\x00")
    with pytest.raises(LocalProtocolError, match="the tunnel failed already"):
        tunnel.receive_data(NO_AUTHENTICATION)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_data_is_taken(kind: type) -> None:
    tunnel = _tunnel()
    tunnel.receive_data(kind(NO_AUTHENTICATION))
    assert tunnel.receive_data(kind(SUCCESS))


def test_data_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        _tunnel().receive_data("\x05\x00")  # type: ignore[arg-type]


def test_socks_errors_pickle_with_their_reply_and_finality() -> None:
    error = ProxyError("refused", reply=2, final="the proxy would refuse again (SOCKS5 reply 2)")
    copied = pickle.loads(pickle.dumps(error))
    assert (type(copied), str(copied), copied.reply, copied.final_reason) == (
        ProxyError,
        "refused",
        2,
        "the proxy would refuse again (SOCKS5 reply 2)",
    )
