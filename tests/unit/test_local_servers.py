"""The local stack's HTTP servers send each write at once (TCP_NODELAY on every connection they accept).

Without it, a response whose body is written after its headers waits for the client's delayed ACK, 40 ms
at a time: the AppConfig double's configuration took 44 ms to arrive at every function's init.
"""

from __future__ import annotations

import ast
import socket
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from local.processes import LoopbackHTTPServer
from local.quiet_server import QuietServer

LOCAL = Path(__file__).resolve().parents[2] / "local"
STDLIB_SERVERS = {"HTTPServer", "ThreadingHTTPServer", "TCPServer", "ThreadingTCPServer"}


@pytest.mark.parametrize("server_class", [LoopbackHTTPServer, QuietServer])
def test_every_accepted_connection_sends_its_writes_at_once(server_class):
    server = server_class(("127.0.0.1", 0), BaseHTTPRequestHandler)
    client = socket.create_connection(server.server_address[:2], timeout=5)
    try:
        connection, _ = server.get_request()
        try:
            assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            connection.close()
    finally:
        client.close()
        server.server_close()


def test_no_local_server_is_built_on_the_standard_library_servers_directly():
    """Each derives from `LoopbackHTTPServer` (or `QuietServer`, itself one), never from the stdlib's own."""
    direct = []
    for path in sorted(LOCAL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rpartition(".")[2] for base in node.bases}
                if bases & STDLIB_SERVERS and node.name != "LoopbackHTTPServer":
                    direct.append(f"{path.name}:{node.name}")
    assert direct == []


def test_a_double_that_never_served_closes_at_once():
    """A stack whose start failed stops what it made: a server never started must not wait for its loop."""
    server = QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    closing = threading.Thread(target=server.close, daemon=True)
    closing.start()
    closing.join(5)
    assert not closing.is_alive()


def test_a_serving_double_closes_and_frees_its_port():
    server = QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.serve_in_background("test-double")
    server.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
