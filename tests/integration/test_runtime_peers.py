"""The local Function URL against a second runtime: AWS's own Node.js runtime interface client.

Our Python runtime and the local Runtime API were written by the same hands, so they could agree on
a mistake. `aws-lambda-ric` (pinned in `tests/runtime_peers/node`) is what Node functions run on in
Lambda; it speaks the Runtime API as AWS wrote it. Each case runs on both runtimes behind a local
Function URL and is read with a bare-socket HTTP client, which sees what ordinary clients hide: the
moment each chunk arrives, and whether a chunked body ended with its last chunk or was cut.

The Node client is built by `scripts/install-node-ric.sh`; where it cannot be (no apt, not root, no
network) the Node tests skip and say why, and the Python ones still run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local.function_url import FunctionUrlServer
from local.functions import EXEC_WRAPPER, REPO_ROOT, STOCK_BOOTSTRAP, FunctionRuntime, FunctionSpec, LocalFunction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]  # the first run builds the Node client (1-2 min)

PEERS = REPO_ROOT / "tests" / "runtime_peers"
NODE_ROOT = PEERS / "node"
PYTHON_ROOT = PEERS / "python"
INSTALL_NODE_RIC = REPO_ROOT / "scripts" / "install-node-ric.sh"
RIC_PACKAGE = NODE_ROOT / "node_modules" / "aws-lambda-ric"

RUNTIMES = ("node", "python")
COOKIES = ["peer_a=1; Path=/", "peer_b=2; Path=/; HttpOnly"]
TEXT = "text/plain; charset=utf-8"
# Headers the front door adds on its own, and the one that names the runtime: not part of a comparison.
NOT_COMPARED = {"date", "server", "x-peer-runtime"}
READ_TIMEOUT = 15.0  # longer than a hung invocation takes to time out, so a hang is seen as one


@dataclass
class Answer:
    """What a client saw: the head, each chunk with its arrival time, and how the body ended."""

    status: int
    headers: list[tuple[str, str]]
    sent_at: float
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    ending: str = "complete"  # complete | cut (closed before the body's end) | hang (neither, in time)
    ended_at: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    @property
    def chunked(self) -> bool:
        return (self.header("transfer-encoding") or "").lower() == "chunked"

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def cookies(self) -> list[str]:
        return [value for key, value in self.headers if key.lower() == "set-cookie"]

    def arrival_of(self, piece: bytes) -> float:
        """When the body first held `piece` whole."""
        seen = b""
        for at, data in self.chunks:
            seen += data
            if piece in seen:
                return at
        raise AssertionError(f"{piece!r} never arrived in {self.body!r}")

    def observable(self) -> dict[str, object]:
        """What a client can tell apart, less what only names the runtime."""
        return {
            "status": self.status,
            "headers": sorted(
                (k.lower(), v) for k, v in self.headers if k.lower() not in NOT_COMPARED | {"set-cookie"}
            ),
            "cookies": self.cookies(),
            "body": self.body,
            "ending": self.ending,
        }


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buffer:
            if not self.fill():
                return None
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exact(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self.fill():
                return None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def fetch(url: str, path: str, timeout: float = READ_TIMEOUT) -> Answer:
    """GET `path` on a fresh connection and read the answer to its end, its cut, or `timeout`."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sent_at = time.monotonic()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode())
        reader = _Reader(sock)
        status_line = reader.line()
        assert status_line, f"{path}: connection closed before a status line"
        answer = Answer(int(status_line.split()[1]), [], sent_at)
        while line := reader.line():
            name, _, value = line.decode("latin-1").partition(":")
            answer.headers.append((name.strip(), value.strip()))
        try:
            answer.ending = _read_body(reader, answer)
        except TimeoutError:
            answer.ending = "hang"
        answer.ended_at = time.monotonic()
        return answer


def _read_body(reader: _Reader, answer: Answer) -> str:
    if not answer.chunked:
        data = reader.exact(int(answer.header("content-length") or 0))
        if data is None:
            answer.chunks.append((time.monotonic(), reader.buffer))
            return "cut"
        answer.chunks.append((time.monotonic(), data))
        return "complete"
    while True:
        size_line = reader.line()
        if size_line is None:
            return "cut"
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while reader.line():  # trailers, up to the blank line that ends the body
                pass
            return "complete"
        data = reader.exact(size + 2)
        if data is None:
            return "cut"
        answer.chunks.append((time.monotonic(), data[:-2]))


@dataclass(frozen=True)
class Case:
    """A request to one of a peer's functions, and what the function answers it with."""

    path: str
    function: str  # stream | buffered
    status: int
    body: bytes
    content_type: str | None = TEXT
    cookies: tuple[str, ...] = tuple(COOKIES)


CASES = {
    "prelude": Case("/prelude", "stream", 201, b"".join(b"chunk %d\n" % i for i in range(5))),
    "throw-mid-stream": Case("/throw-mid-stream", "stream", 200, b"partial 0\npartial 1\n"),
    "throw-before-write": Case(
        "/throw-before-write",
        "stream",
        502,
        b'{"Message":"Internal Server Error"}',
        content_type="application/json",
        cookies=(),
    ),
    "buffered": Case("/", "buffered", 202, b'{"peer":"buffered","ok":true}', content_type="application/json"),
    "no-prelude": Case("/no-prelude", "stream", 200, b"raw 0\nraw 1\nraw 2\n", content_type=None, cookies=()),
    "prelude-without-status": Case("/prelude-without-status", "stream", 200, b"no status 0\nno status 1\n"),
}


@dataclass
class Peer:
    """One runtime's functions, each behind its own local Function URL."""

    runtime: str
    urls: dict[str, str]

    def fetch(self, function: str, path: str) -> Answer:
        return fetch(self.urls[function], path)

    def run(self, case: str) -> Answer:
        spec = CASES[case]
        return self.fetch(spec.function, spec.path)


def _node_command(handler: str) -> tuple[str, ...]:
    package = json.loads((RIC_PACKAGE / "package.json").read_text())
    bin_path = package["bin"] if isinstance(package["bin"], str) else package["bin"]["aws-lambda-ric"]
    return (shutil.which("node") or "node", str(RIC_PACKAGE / bin_path), handler)


def _runtime_spec(runtime: str, name: str, handler: str, concurrency: int, timeout_seconds: float) -> FunctionSpec:
    if runtime == "node":
        return FunctionSpec(
            name=f"peer-node-{name}",
            handler=handler,
            runtime=FunctionRuntime(task_root=NODE_ROOT, command=_node_command(handler)),
            concurrency=concurrency,
            timeout_seconds=timeout_seconds,
        )
    # Our runtime as Lambda starts it: the exec wrapper given the interpreter and the stock bootstrap.
    return FunctionSpec(
        name=f"peer-python-{name}",
        handler=handler,
        environment={"PYTHONPATH": str(REPO_ROOT)},
        runtime=FunctionRuntime(
            task_root=PYTHON_ROOT, command=(str(EXEC_WRAPPER), sys.executable, str(STOCK_BOOTSTRAP))
        ),
        concurrency=concurrency,
        timeout_seconds=timeout_seconds,
    )


def _start_peer(runtime: str) -> Iterator[Peer]:
    specs = {
        "stream": _runtime_spec(runtime, "stream", "peer_handlers.stream", concurrency=2, timeout_seconds=10),
        "buffered": _runtime_spec(runtime, "buffered", "peer_handlers.buffered", concurrency=1, timeout_seconds=10),
        # One environment, a short timeout: a failed stream whose end is lost hangs for seconds, not minutes.
        "race": _runtime_spec(runtime, "race", "peer_handlers.stream", concurrency=1, timeout_seconds=3),
    }
    # Only what a process needs to start: the developer's shell must not steer either runtime.
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
    }
    functions = [LocalFunction(spec, base_env=base_env).start() for spec in specs.values()]
    servers = [FunctionUrlServer(function, 0).start() for function in functions]
    try:
        for function in functions:
            assert function.wait_ready(30), f"{function.spec.name}: the worker never asked for an invocation"
        yield Peer(runtime, {key: server.url for key, server in zip(specs, servers, strict=True)})
    finally:
        _all_at_once([server.shutdown for server in servers] + [function.stop for function in functions])
        for server in servers:
            server.server_close()


def _all_at_once(steps: list[Callable[[], None]]) -> None:
    """Each server's shutdown waits out its poll interval: in parallel they cost one, not six."""
    threads = [threading.Thread(target=step) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(scope="module")
def node_ric() -> Path:
    """The pinned aws-lambda-ric, built if missing; a skip if it cannot be here."""
    installed = subprocess.run(
        ["bash", str(INSTALL_NODE_RIC)], capture_output=True, text=True, timeout=420, check=False
    )
    if installed.returncode == 3:
        pytest.skip(f"AWS's Node runtime client is not installed and cannot be here: {installed.stderr.strip()[-300:]}")
    assert installed.returncode == 0, installed.stderr
    return RIC_PACKAGE


@pytest.fixture(scope="module")
def node_peer(node_ric: Path) -> Iterator[Peer]:
    yield from _start_peer("node")


@pytest.fixture(scope="module")
def python_peer() -> Iterator[Peer]:
    yield from _start_peer("python")


@pytest.fixture(params=RUNTIMES)
def peer(request: pytest.FixtureRequest) -> Peer:
    return request.getfixturevalue(f"{request.param}_peer")


def _assert_head(answer: Answer, case: str, runtime: str) -> None:
    """The prelude's (or returned) status, headers and cookies, as the function set them."""
    spec = CASES[case]
    assert answer.status == spec.status, answer
    assert answer.header("x-peer-case") == case
    assert answer.header("x-peer-runtime") == runtime
    assert answer.header("content-type") == spec.content_type
    assert answer.cookies() == list(spec.cookies)


def test_prelude_status_headers_cookies_and_chunks_as_written(peer: Peer):
    answer = peer.run("prelude")
    _assert_head(answer, "prelude", peer.runtime)
    assert answer.chunked
    assert answer.body == CASES["prelude"].body
    assert answer.ending == "complete"
    # Written 100 ms apart: the first is with the client well before the last is written.
    spread = answer.arrival_of(b"chunk 4\n") - answer.arrival_of(b"chunk 0\n")
    assert spread >= 0.3, f"the chunks arrived together ({spread:.3f} s apart): something buffered the stream"


def test_throw_mid_stream_keeps_the_bytes_written_then_cuts_the_body(peer: Peer):
    answer = peer.run("throw-mid-stream")
    _assert_head(answer, "throw-mid-stream", peer.runtime)
    assert answer.chunked
    assert answer.body == b"partial 0\npartial 1\n"
    assert answer.ending == "cut", "a failed stream must not end with the chunked body's last chunk"
    assert answer.ended_at - answer.sent_at < 2.0


def test_throw_before_the_first_write_is_a_502_with_a_json_body(peer: Peer):
    answer = peer.run("throw-before-write")
    assert answer.status == 502
    assert answer.header("content-type") == "application/json"
    assert isinstance(json.loads(answer.body), dict)
    assert b"boom" not in answer.body, "the function's error is not the client's to read"
    assert answer.header("x-peer-case") is None, "the prelude was never written, so none of it shows"
    assert answer.cookies() == []
    assert answer.ending == "complete"


def test_buffered_handler_answers_as_returned(peer: Peer):
    answer = peer.run("buffered")
    _assert_head(answer, "buffered", peer.runtime)
    assert not answer.chunked
    assert answer.body == CASES["buffered"].body
    assert answer.header("content-length") == str(len(answer.body))
    assert answer.ending == "complete"


def test_stream_without_prelude_is_200_with_the_runtime_content_type(peer: Peer):
    answer = peer.run("no-prelude")
    assert answer.status == 200
    assert answer.header("content-type") == "text/plain"
    assert answer.header("x-peer-case") is None
    assert answer.cookies() == []
    assert answer.chunked
    assert answer.body == CASES["no-prelude"].body
    assert answer.ending == "complete"


def test_prelude_without_status_code_is_200_with_its_headers_and_cookies(peer: Peer):
    answer = peer.run("prelude-without-status")
    _assert_head(answer, "prelude-without-status", peer.runtime)
    assert answer.chunked
    assert answer.body == CASES["prelude-without-status"].body
    assert answer.ending == "complete"


@pytest.mark.parametrize("case", CASES)
def test_both_runtimes_give_the_client_the_same_answer(case: str, node_peer: Peer, python_peer: Peer):
    assert node_peer.run(case).observable() == python_peer.run(case).observable()


def test_a_failed_stream_then_the_next_invocation_on_one_environment(peer: Peer):
    """A stream fails mid-way; the next request reaches the same (only) environment right after.

    Right after, not during: with one environment, a request that comes while the first is in flight
    is throttled (429), as in Lambda. The Node case also turns off waiting for an empty event loop,
    so its client asks for the next event as soon as the failed stream's end is written, not once
    the Runtime API has acknowledged it: the end must still count for the first invocation.
    """
    first = peer.fetch("race", "/throw-mid-stream-early-next")
    assert first.status == 200
    assert first.body == b"partial 0\npartial 1\n"
    assert first.ending == "cut"
    last_byte = first.arrival_of(b"partial 1\n")
    assert first.ended_at - last_byte < 2.0, f"the cut came {first.ended_at - last_byte:.1f} s after the last byte"
    second = peer.fetch("race", "/prelude")
    assert second.status == 201, second
    assert second.body == CASES["prelude"].body
    assert second.ending == "complete"
    assert second.ended_at - second.sent_at < 3.0
