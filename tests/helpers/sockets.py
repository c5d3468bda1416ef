"""How many of this process's TCP sockets are connected to a loopback port (Linux: /proc)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ESTABLISHED", "sockets_to"]

#: The state code of an established connection in /proc/net/tcp: neither side has shut it down.
ESTABLISHED = "01"

# The loopback address as /proc/net/tcp and /proc/net/tcp6 write it: 127.0.0.1, ::ffff:127.0.0.1
# and ::1.
_LOOPBACK = ("0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000")


def sockets_to(port: int, state: str | None = None) -> int:
    """How many of this process's descriptors are TCP sockets connected to ``port`` on the
    loopback address: in any state, or only in ``state`` (a /proc/net/tcp code such as
    `ESTABLISHED`)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            host, remote_port = fields[2].split(":")
            if host in _LOOPBACK and int(remote_port, 16) == port and fields[9] in inodes:
                count += state is None or fields[3] == state
    return count
