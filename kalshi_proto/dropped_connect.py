"""What a cancelled ``anyio.connect_tcp`` can drop: a connection already made.

``anyio.connect_tcp`` races its attempts in a task group and keeps the winner in a local,
``connected_stream``, until the group ends. Before anyio 4.16, a cancellation (the caller's, or
a timeout's) that landed as the group ended went out with that connection still open: no one
held it, and the garbage collector closed it later, with a ``ResourceWarning``. anyio 4.16 closes
it there itself.

The dropped connection is still in ``connect_tcp``'s frame, which the cancellation's traceback
keeps. `dropped_connection` finds it; the adapter that called ``connect_tcp`` closes it and lets
the cancellation go on. With anyio 4.16 or later the connection found is closed already, and
closing it again does nothing. The core only reads frames here: it imports no anyio and closes
nothing.
"""

from __future__ import annotations

__all__ = ["dropped_connection"]

#: The module and function whose frame holds the connection.
CONNECT_MODULE = "anyio._core._sockets"
CONNECT_FUNCTION = "connect_tcp"
CONNECTION_LOCAL = "connected_stream"


def dropped_connection(error: BaseException) -> object | None:
    """The connection that ``anyio.connect_tcp`` had made when ``error`` (what ended it) went
    out of it, found in the traceback of ``error``; None if ``error`` did not come from there,
    or if no attempt had connected. (The adapter checks it is the stream it expects.)"""
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if (
            frame.f_code.co_name == CONNECT_FUNCTION
            and frame.f_globals.get("__name__") == CONNECT_MODULE
        ):
            return frame.f_locals.get(CONNECTION_LOCAL)
        trace = trace.tb_next
    return None
