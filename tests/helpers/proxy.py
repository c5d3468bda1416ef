"""A ``CONNECT`` proxy on loopback, for the tests of clients that tunnel through one.

Written against the sockets, not against `kalshi_proto.proxy`: it is the independent peer the
client's tunnel code is tested with. It reads a request head, answers it, and, when it grants
the tunnel, copies bytes both ways between the client and the target until either side closes.
Only loopback targets are reached, so no test can tunnel anywhere else.
"""

from __future__ import annotations

import base64
import ipaddress
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trustme

__all__ = ["TunnelProxy", "peer_closed", "proxy_tls_context", "running", "tunnel_proxy"]

_HEAD_LIMIT = 64 * 1024


@dataclass
class TunnelProxy:
    """The proxy's settings and what it saw.

    Attributes:
        answer: bytes to send instead of granting the tunnel (a refusal, garbage), then close;
            ``b""`` closes without answering; None grants it.
        silent: accept connections and read the request, but never answer.
        credentials: ``(user, password)`` the proxy demands (407 otherwise), or None.
        heads: the request heads received (everything up to the blank line), in order.
        accepted: how many connections it accepted.
        most_open: the most tunnels open at once. A tunnel stops counting as soon as its
            client has closed its end, even if the thread relaying it has not seen that yet: a
            client that closes a connection and opens another at once has one open, not two.
        upstream_ports: the local port of each tunnel's connection to its target: the client
            port the target sees for requests that came through the tunnel.
        tls: a server-side TLS context: the proxy is then spoken to over TLS (an ``https://``
            proxy), the client's TLS session with the target inside that one.
    """

    answer: bytes | None = None
    tls: ssl.SSLContext | None = None
    silent: bool = False
    credentials: tuple[str, str] | None = None
    heads: list[bytes] = field(default_factory=list)
    upstream_ports: list[int] = field(default_factory=list)
    accepted: int = 0
    most_open: int = 0
    _open: int = 0
    _tunnels: set[socket.socket] = field(default_factory=set)  # client sockets, counted open
    _listener: socket.socket = field(init=False)
    _threads: list[threading.Thread] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        #: The port the proxy listens on (refusing connections once it has stopped).
        self.port: int = self._listener.getsockname()[1]
        self._start(self._accept)

    def url(self, userinfo: str = "") -> str:
        """The proxy's URL, with ``userinfo`` (``"user:password@"``) if given."""
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def headers(self, index: int = 0) -> dict[str, str]:
        """The headers of the ``index``-th request head, names lower-cased."""
        lines = self.heads[index].decode("latin-1").split("\r\n")[1:]
        pairs = (line.split(":", 1) for line in lines if line)
        return {name.strip().lower(): value.strip() for name, value in pairs}

    def stop(self) -> None:
        """Close every socket and wait for every thread."""
        self._stopping.set()
        # The accepting thread first: once it has ended, no connection thread starts.
        accepting, *_ = self._threads
        accepting.join(10)
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            self._start(self._serve, self._keep(client))

    def _recv(self, client: socket.socket, size: int) -> bytes | None:
        # One read of at most ``size`` bytes, waiting as long as it takes; None once the proxy
        # stops or the client leaves first. (``client`` has a short timeout, for the checks.)
        while not self._stopping.is_set():
            try:
                return client.recv(size) or None
            except TimeoutError:
                continue
            except OSError:
                return None
        return None

    def _scripted(self, client: socket.socket) -> bool:
        # The settings that take the place of an answer, after the client's first words: True
        # when one did (``silent`` waits until the proxy stops; ``answer`` is sent, then the
        # connection is shut).
        if self.silent:
            self._stopping.wait()
            return True
        if self.answer is not None:
            client.sendall(self.answer)
            client.shutdown(socket.SHUT_RDWR)
            return True
        return False

    def _read_head(self, client: socket.socket) -> bytes | None:
        client.settimeout(0.05)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(client, 4096)
            if chunk is None or len(data) > _HEAD_LIMIT:
                return None
            data += chunk
        return data.split(b"\r\n\r\n", 1)[0]

    def _serve(self, client: socket.socket) -> None:
        try:
            if self.tls is not None:
                client.settimeout(5)
                client = self._keep(self.tls.wrap_socket(client, server_side=True))
            self._answer(client)
        except OSError:
            pass  # the client left first: a proxy thread has nobody to tell

    def _answer(self, client: socket.socket) -> None:
        head = self._read_head(client)
        if head is None:
            return
        with self._lock:
            self.heads.append(head)
        if self._scripted(client):
            return
        index = len(self.heads) - 1
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if self.headers(index).get("proxy-authorization") != f"Basic {token}":
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                client.shutdown(socket.SHUT_RDWR)
                return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or not ipaddress.ip_address(host.strip("[]")).is_loopback:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            client.shutdown(socket.SHUT_RDWR)
            return
        try:
            upstream = self._keep(socket.create_connection((host.strip("[]"), int(port)), 5))
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            client.shutdown(socket.SHUT_RDWR)
            return
        self._tunnel_opened(client, upstream)
        try:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._pipe(client, upstream)
        finally:
            self._tunnel_closed(client)

    def _tunnel_opened(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            self.upstream_ports.append(upstream.getsockname()[1])
            # A tunnel whose client has closed but whose relay has not noticed yet (on a busy
            # machine it may take a while to be scheduled) is not open any more.
            self._tunnels = {sock for sock in self._tunnels if not peer_closed(sock)}
            self._tunnels.add(client)
            self._open = len(self._tunnels)
            self.most_open = max(self.most_open, self._open)

    def _tunnel_closed(self, client: socket.socket) -> None:
        with self._lock:
            self._tunnels.discard(client)
            self._open = len(self._tunnels)

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        for sock in peers:  # each relayed piece goes on at once (Nagle would hold small ones)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # poll, not select: a busy soak has file descriptors past select's limit of 1024.
        poller = select.poll()
        for sock in peers:
            sock.setblocking(True)
            poller.register(sock, select.POLLIN)
        by_fd = {sock.fileno(): sock for sock in peers}
        while not self._stopping.is_set() and self._relay(peers, poller, by_fd):
            pass
        # One side ended: so does the tunnel, as a real proxy's would.
        for sock in peers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _relay(
        peers: dict[socket.socket, socket.socket],
        poller: select.poll,
        by_fd: dict[int, socket.socket],
    ) -> bool:
        # Copy what is waiting on either side to the other; False once a side has ended.
        for fd, _ in poller.poll(50):
            sock = by_fd[fd]
            try:
                data = sock.recv(65536)
                while isinstance(sock, ssl.SSLSocket) and sock.pending():  # (poll cannot see)
                    data += sock.recv(65536)
                if data:
                    peers[sock].sendall(data)
            except OSError:
                return False
            if not data:
                return False
        return True


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed its end of ``sock`` and every byte it sent has been read.

    Looks without reading or waiting. A TLS socket cannot be looked at so (its records are not
    its bytes): it counts as open until it is read to its end.
    """
    if isinstance(sock, ssl.SSLSocket):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, TimeoutError):
        return False  # open, nothing to read (a socket with a timeout waits for it first)
    except OSError:
        return True  # reset, or closed here


P = TypeVar("P", bound=TunnelProxy)


@contextmanager
def running(proxy: P) -> Iterator[P]:
    """``proxy``, running; stopped, every socket closed, after the block."""
    try:
        yield proxy
    finally:
        proxy.stop()


def tunnel_proxy(**settings: object) -> AbstractContextManager[TunnelProxy]:
    """A running `TunnelProxy` with ``settings``; stopped, every socket closed, after."""
    return running(TunnelProxy(**settings))  # type: ignore[arg-type]


def proxy_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """The proxy's side of an ``https://`` proxy's TLS session (`TunnelProxy`'s ``tls``): a
    certificate for 127.0.0.1 issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context
