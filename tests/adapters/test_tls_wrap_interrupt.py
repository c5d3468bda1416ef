"""A Ctrl-C inside ``ssl.SSLContext.wrap_socket`` closes the connection's descriptor once, at once.

CPython builds the TLS socket on the plain socket's descriptor, then makes the plain socket let
go of it: an interrupt between the two leaves both owning it (`kalshi_proto.tls_wrap`). Here
the plain socket's ``detach`` raises KeyboardInterrupt, which is an interrupt at exactly that
moment. Before the mend, `kalshi_sync` closed the plain socket and the half-made TLS socket
closed the same number again when the interrupt was dropped, shutting whatever socket had been
given that number in between; the blocking httpx client left both to the garbage collector.
"""

from __future__ import annotations

import gc
import os
import socket
import ssl
import warnings
from typing import Any

import pytest
from httpcore._backends.sync import SyncBackend, SyncStream

import kalshi_httpx
import kalshi_sync
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.tls_wrap import interrupted_tls_wrap
from tests.adapters.conftest import Driver, open_sockets_to

pytestmark = [pytest.mark.anyio, pytest.mark.flavours("sync")]


@pytest.fixture
def anyio_backend() -> None:
    return None


class _InterruptedHandOver(socket.socket):
    # A plain socket interrupted as it is about to let go of its descriptor, once.
    interrupted = False

    def detach(self) -> int:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return super().detach()


def interrupted_on_hand_over(sock: socket.socket) -> socket.socket:
    """``sock``'s connection, in a socket whose hand-over to a TLS socket is interrupted."""
    return _InterruptedHandOver(sock.family, sock.type, sock.proto, fileno=sock.detach())


def wrap_interrupted(plain: socket.socket) -> KeyboardInterrupt:
    context = ssl.create_default_context()
    with pytest.raises(KeyboardInterrupt) as caught:
        context.wrap_socket(plain, server_hostname="localhost", do_handshake_on_connect=False)
    return caught.value


def test_the_two_owners_of_an_interrupted_wrap_are_found() -> None:
    plain, peer = socket.socketpair()
    with peer:
        lent = interrupted_on_hand_over(plain)
        descriptor = lent.fileno()
        error = wrap_interrupted(lent)
        found = interrupted_tls_wrap(error)
        assert found is not None
        assert found.wrapped is lent
        assert isinstance(found.made, ssl.SSLSocket)
        assert found.made.fileno() == descriptor == lent.fileno()
        found.made.detach()
        found.wrapped.close()
        del error, found
        gc.collect()
        with pytest.raises(OSError):
            os.fstat(descriptor)


def test_a_wrap_interrupted_after_the_hand_over_has_one_owner() -> None:
    plain, peer = socket.socketpair()
    with peer, plain:
        error = wrap_interrupted(interrupted_on_hand_over(plain))
        trace = error.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_name != "_create":
            trace = trace.tb_next
        assert trace is not None
        made = trace.tb_frame.f_locals["self"]
        wrapped = trace.tb_frame.f_locals["sock"]
        wrapped.interrupted = True
        wrapped.detach()  # the hand-over done: the TLS socket alone owns the descriptor
        assert interrupted_tls_wrap(error) is None
        made.close()


def test_an_error_from_elsewhere_names_no_sockets() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        assert interrupted_tls_wrap(exc) is None
    context = ssl.create_default_context()  # refused before any TLS socket is made
    plain, peer = socket.socketpair()
    with plain, peer, pytest.raises(ValueError) as refused:
        context.wrap_socket(plain)  # check_hostname needs a server_hostname
    assert interrupted_tls_wrap(refused.value) is None


async def test_an_interrupt_as_tls_takes_the_socket_over_closes_it_once(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with kx.client(retry=RetryPolicy.disabled()) as client:
        assert isinstance(client, kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient)
        if isinstance(client, kalshi_sync.KalshiClient):
            connect_tcp = kalshi_sync._io._connect_tcp

            def lend(*args: Any) -> socket.socket:
                return interrupted_on_hand_over(connect_tcp(*args))

            monkeypatch.setattr(kalshi_sync._io, "_connect_tcp", lend)
        else:
            backend_connect = SyncBackend.connect_tcp

            def connect(backend: Any, *args: Any, **kwargs: Any) -> Any:
                stream = backend_connect(backend, *args, **kwargs)
                assert isinstance(stream, SyncStream)
                stream._sock = interrupted_on_hand_over(stream._sock)
                return stream

            monkeypatch.setattr(SyncBackend, "connect_tcp", connect)
        with warnings.catch_warnings(record=True) as dropped:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(KeyboardInterrupt) as caught:
                client.exchange.status()
            monkeypatch.undo()
            # Closed now, not when the interrupt goes: its traceback holds both sockets.
            assert open_sockets_to(kx.server.port) == 0
            # Most likely given the number just freed, which a second close would shut.
            bystander = socket.socket()
            del caught
            gc.collect()
        with bystander:
            os.fstat(bystander.fileno())  # still open
        assert [str(warning.message) for warning in dropped] == []
        assert client.exchange.status().exchange_active
