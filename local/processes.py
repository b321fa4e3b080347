"""Small process and port helpers shared by the local stack's parts."""

from __future__ import annotations

import ctypes
import signal
import socket
from http.server import ThreadingHTTPServer
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the stack dies, even by SIGKILL.

    The flag survives `exec`, so it holds through the exec wrapper into the worker's interpreter.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server whose connections send each write at once (TCP_NODELAY).

    Without it, Nagle's algorithm holds a small write (an SSE event, a response body after its
    headers) until the peer's delayed ACK: 40 ms at a time, which is the whole latency budget.
    """

    daemon_threads = True
    allow_reuse_address = True

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
