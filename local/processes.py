"""Small process and port helpers shared by the local stack's parts."""

from __future__ import annotations

import ctypes
import secrets
import signal
import socket
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the stack dies, even by SIGKILL.

    The flag survives `exec`, so it holds through the exec wrapper into the worker's interpreter.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PICKED_BELOW = 12_000  # how far below the kernel's ephemeral range free ports are picked


def free_port() -> int:
    """A free loopback port, picked below the kernel's ephemeral range.

    A port is chosen now and bound later (a stack decides its URLs before its servers start). Ports the
    kernel hands out on its own (every server bound to port 0, such as each worker's Runtime API, and
    every outgoing connection) come from the ephemeral range, so they can never take it in between.
    """
    low = _ephemeral_range_start()
    for _ in range(500):
        port = secrets.randbelow(_PICKED_BELOW) + max(1024, low - _PICKED_BELOW)
        if port >= low:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server whose connections send each write at once (TCP_NODELAY).

    Without it, Nagle's algorithm holds a small write (an SSE event, a response body after its
    headers) until the peer's delayed ACK: 40 ms at a time, which is the whole latency budget.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of new connections (a page of tabs, a load test) waits, not resets

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
