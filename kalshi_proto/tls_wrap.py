"""What a Ctrl-C in ``ssl.SSLContext.wrap_socket`` can leave: two sockets owning one descriptor.

CPython's ``SSLSocket._create`` (3.11 to 3.13) builds the TLS socket on the plain socket's
descriptor and only then makes the plain socket let go of it (``sock.detach()``). A
KeyboardInterrupt between the two steps leaves both objects owning the descriptor, and each
closes it: the second close may come after the number went to another socket or file of the
process, which it then shuts under its owner. (CPython gh-113280 narrowed the window in 3.13;
it is still there.) The half-made TLS socket is reachable only through the interrupt's
traceback, which keeps it until the interrupt is dropped.

`interrupted_tls_wrap` finds the two in that traceback; the adapter that called
``wrap_socket`` makes the TLS socket let go (``made.detach()``) and closes the plain one, so the
descriptor is closed once, at once. The core only reads frames here: it imports no ``ssl`` and
closes nothing.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypeGuard

__all__ = ["InterruptedWrap", "Socket", "interrupted_tls_wrap"]


class Socket(Protocol):
    """What `interrupted_tls_wrap` needs of a socket (``socket.socket`` and ``ssl.SSLSocket``)."""

    def fileno(self) -> int: ...

    def detach(self) -> int: ...

    def close(self) -> None: ...


class InterruptedWrap(NamedTuple):
    """The two owners of one descriptor that an interrupted ``wrap_socket`` left."""

    made: Socket  #: the TLS socket ``wrap_socket`` was making
    wrapped: Socket  #: the plain socket it was given


def interrupted_tls_wrap(error: BaseException) -> InterruptedWrap | None:
    """The sockets an interrupted ``wrap_socket`` left owning one descriptor, found in the
    traceback of ``error`` (what interrupted it); None if ``error`` did not come from there, or
    if only one of them owns the descriptor (it then closes it once, with the other or alone).
    """
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code.co_name == "_create" and frame.f_globals.get("__name__") == "ssl":
            made, wrapped = frame.f_locals.get("self"), frame.f_locals.get("sock")
            if _is_socket(made) and _is_socket(wrapped):
                descriptor = made.fileno()
                if descriptor != -1 and descriptor == wrapped.fileno():
                    return InterruptedWrap(made, wrapped)
        trace = trace.tb_next
    return None


def _is_socket(value: object) -> TypeGuard[Socket]:
    return all(callable(getattr(value, name, None)) for name in ("fileno", "detach", "close"))
