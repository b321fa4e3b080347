"""An SDK client shared by an environment's invocations keeps a connection for each call they make at once:
on Managed Instances (32 invocations in one environment) nothing is dropped to be opened again."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.aws_clients import DYNAMODB
from shared.concurrency import pool_size
from tests.fixtures.aws import loopback_client

AT_ONCE = 40


class _Table(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.connections: set[tuple[str, int]] = set()
        self.hold = threading.Barrier(AT_ONCE, timeout=10)  # every call of a wave in flight at once


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Table

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.connections.add(self.client_address)
        self.server.hold.wait()
        body = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def table() -> Iterator[_Table]:
    server = _Table()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# The table's limits, with time enough for a wave of 40 calls to be in flight at once on a loaded 2-core
# machine (DynamoDB's 1.5 s read timeout is for one call, not for 40 threads starting together).
PATIENT = dataclasses.replace(DYNAMODB, connect_timeout=5.0, read_timeout=15.0)


def _waves(url: str, waves: int) -> None:
    client = loopback_client("dynamodb", url, region="us-east-1", config=PATIENT.botocore_config())
    with ThreadPoolExecutor(AT_ONCE) as calls:
        for _ in range(waves):
            list(calls.map(lambda _: client.list_tables(), range(AT_ONCE)))


def test_on_managed_instances_a_shared_client_keeps_a_connection_for_each_call_at_once(table, monkeypatch, caplog):
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "32")
    assert pool_size() >= AT_ONCE
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        _waves(f"http://127.0.0.1:{table.server_address[1]}", waves=3)
    assert "Connection pool is full" not in caplog.text
    assert len(table.connections) == AT_ONCE  # the second and third waves reuse the first's connections


def test_botocore_s_own_pool_would_drop_and_reopen_them(table, monkeypatch, caplog):
    """The failure the pool's size prevents, shown with botocore's default of 10."""
    monkeypatch.setattr("shared.aws_clients.pool_size", lambda: 10)
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        _waves(f"http://127.0.0.1:{table.server_address[1]}", waves=3)
    assert "Connection pool is full" in caplog.text
    assert len(table.connections) > 2 * AT_ONCE
