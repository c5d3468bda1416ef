"""An HTTP/2 server that retires its connections gracefully, as RFC 9113 section 6.8 describes.

A server retiring a connection (after a set number of requests, or to restart) sends a GOAWAY
frame naming the last stream it took, answers the streams up to it, and closes the connection
once they are done. Streams above it were not processed: the client may send them again on
another connection. nginx and the cloud load balancers do so.

Hypercorn, the suite's other HTTP/2 server, cannot: its h2 connection refuses to send anything
after its GOAWAY (python-hyper/h2#1181), so it drops the answers of every stream in flight.
Here the GOAWAY frame is written by hand, outside h2's connection state, which stays open for
the answers. Each connection is served by a thread of its own, over TLS with ALPN ``h2``; every
request is answered with the spec example of its operation (no signature check).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import trustme

from tests.adapters.server import PREFIX, response_body, route


@dataclass(frozen=True)
class Retire:
    """How a connection is retired: once ``after`` whole requests have arrived on it.

    ``last`` picks the GOAWAY's last stream id from the ids of the requests arrived so far (0
    says none was processed). With ``hold``, no request is answered before the GOAWAY, so all
    those up to it are answered after it. Without ``answer``, the connection closes without
    answering them (as Hypercorn does)."""

    after: int
    last: Callable[[list[int]], int] = max
    hold: bool = False
    answer: bool = True


@dataclass(frozen=True)
class Processed:
    """A request the server took and answered: on its ``connection`` (0 is the first)."""

    connection: int
    stream_id: int
    method: str
    path: str
    body: bytes


@dataclass
class GracefulH2Server:
    """Serves HTTP/2 on loopback; connection ``i`` is retired as ``plans[i]`` says (later ones
    as ``otherwise``; None: never)."""

    ca: trustme.CA
    cert_file: Path
    plans: Sequence[Retire | None] = ()
    otherwise: Retire | None = None
    processed: list[Processed] = field(default_factory=list)
    refused: int = 0  #: streams above a GOAWAY's last stream id: not processed
    unanswered: int = 0  #: streams up to it that a connection closed without answering
    accepted: int = 0
    #: How many requests, the first to arrive, are reset with ``REFUSED_STREAM`` unprocessed.
    refuse_first: int = 0
    reset: int = 0  #: requests reset so
    pings: int = 0  #: PING frames received
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(self.cert_file))
        self._context.set_alpn_protocols(["h2"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._accepting = threading.Thread(target=self._accept, name="h2-graceful", daemon=True)
        self._accepting.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}{PREFIX}"

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def count(self) -> int:
        """How many connections it accepted."""
        return self.accepted

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's test CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return context

    def stop(self) -> None:
        self._stopping.set()
        for thread in [self._accepting, *self._threads]:
            thread.join(10)
            if thread.is_alive():
                raise RuntimeError("the graceful HTTP/2 server did not stop within 10 s")
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            index = self.accepted
            self.accepted += 1
            plan = self.plans[index] if index < len(self.plans) else self.otherwise
            thread = threading.Thread(
                target=self._serve, args=(raw, index, plan), name=f"h2-graceful-{index}"
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket, index: int, plan: Retire | None) -> None:
        raw.settimeout(0.5)
        # Each write goes at once: Nagle's algorithm would hold one back until the client's
        # delayed acknowledgement of the one before, 40 ms on Linux.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with self._context.wrap_socket(raw, server_side=True) as tls:
                _Connection(self, tls, index, plan).run()
        except OSError:
            raw.close()

    def _took(self, processed: Processed) -> None:
        with self._lock:
            self.processed.append(processed)

    def _refuse(self) -> bool:
        with self._lock:
            refuse = self.reset < self.refuse_first
            self.reset += refuse
            return refuse

    def _count(self, refused: int = 0, unanswered: int = 0, pings: int = 0) -> None:
        with self._lock:
            self.refused += refused
            self.unanswered += unanswered
            self.pings += pings


class _Connection:
    # One connection's h2 state and requests, in its thread.

    def __init__(
        self, server: GracefulH2Server, tls: ssl.SSLSocket, index: int, plan: Retire | None
    ) -> None:
        self.server, self.tls, self.index, self.plan = server, tls, index, plan
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.heads: dict[int, dict[str, str]] = {}
        self.bodies: dict[int, bytes] = {}
        self.arrived: list[int] = []  # whole requests, in order
        self.ready: list[int] = []  # whole requests not answered yet
        self.last: int | None = None  # the GOAWAY's last stream id, once sent

    def run(self) -> None:
        self.h2.initiate_connection()
        self.flush()
        while not self.server._stopping.is_set():
            try:
                data = self.tls.recv(65536)
            except TimeoutError:
                if self.plan is not None and self.plan.hold and self.ready and self.last is None:
                    self.go_away()  # fewer requests came than the plan waits for
                    self.answer()
                continue
            if not data:
                return
            self.receive(self.h2.receive_data(data))
            if self.last is None and self.plan is not None and len(self.arrived) >= self.plan.after:
                self.go_away()
            if self.last is not None or self.plan is None or not self.plan.hold:
                self.answer()
            self.flush()
            if self.last is not None and not any(sid <= self.last for sid in self.heads):
                self.close()
                return

    def receive(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                assert event.stream_id is not None and event.headers is not None
                self.heads[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                self.bodies[event.stream_id] = b""
            elif isinstance(event, h2.events.PingReceived):
                self.server._count(pings=1)
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None and event.data is not None
                self.bodies[event.stream_id] += event.data
                assert event.flow_controlled_length is not None
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                if self.last is not None and event.stream_id > self.last:
                    self.heads.pop(event.stream_id, None)  # ignored, as RFC 9113 says
                    self.server._count(refused=1)
                    continue
                if self.server._refuse():
                    self.heads.pop(event.stream_id)
                    self.h2.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    continue
                self.arrived.append(event.stream_id)
                self.ready.append(event.stream_id)

    def go_away(self) -> None:
        assert self.plan is not None
        self.last = self.plan.last(list(self.arrived))
        refused = [sid for sid in self.ready if sid > self.last]
        for sid in refused:
            self.ready.remove(sid)
            del self.heads[sid]
        self.server._count(refused=len(refused))
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = self.last
        self.flush()  # what h2 has queued first: frames stay whole
        self.tls.sendall(frame.serialize())
        if not self.plan.answer:
            self.server._count(unanswered=len(self.heads))
            self.heads.clear()
            self.ready.clear()

    def answer(self) -> None:
        for sid in self.ready:
            head = self.heads.pop(sid)
            method, full = head[":method"], head[":path"]
            path, _, query = full.partition("?")
            matched = route(method, path.removeprefix(PREFIX))
            status, payload = 404, b'{"error": {"code": "not_found"}}'
            if matched is not None:
                op, values = matched
                status, payload = op.success_status, response_body(op, values, query)
            self.server._took(Processed(self.index, sid, method, path, self.bodies.pop(sid)))
            headers = [
                (":status", str(status)),
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
            ]
            self.h2.send_headers(sid, headers)
            self.h2.send_data(sid, payload, end_stream=True)
        self.ready.clear()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.tls.sendall(data)

    def close(self) -> None:
        # Half-close, then read what the client still sends until it closes too: a close with
        # unread bytes would reset the connection, and the client could lose the last answers.
        try:
            socket.socket.shutdown(self.tls, socket.SHUT_WR)
            while self.tls.recv(65536):
                pass
        except OSError:
            pass
