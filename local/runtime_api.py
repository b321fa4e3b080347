"""A local Lambda Runtime API: one server per execution environment, as in Lambda.

Each worker process gets its own Runtime API address, so the server always knows which
invocation a process holds: that is what lets the local stack enforce a function's timeout by
killing the one process that overran, as Lambda does.

Streamed responses are read chunk by chunk (HTTP/1.1 chunked, with trailers) and handed to the
front door as they arrive; nothing here buffers a stream.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO

from local.deployed import LOCAL_ACCOUNT
from local.processes import LoopbackHTTPServer

logger = logging.getLogger(__name__)

API_PREFIX = "/2018-06-01"
_RESPONSE_PATH = re.compile(rf"^{API_PREFIX}/runtime/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


@dataclass(frozen=True)
class Outcome:
    """One thing the front door learns about an invocation, in order.

    kinds: `stream` (a streamed response began), `chunk` (bytes of it), `end` (it finished; trailers),
    `buffered` (a whole JSON response), `error` (the function failed: an error document).
    """

    kind: str
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Invocation:
    event: Any
    timeout_seconds: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_arn: str = ""
    outcomes: queue.Queue[Outcome] = field(default_factory=queue.Queue)
    deadline: float = 0.0  # epoch seconds, set when a worker takes it
    finished: threading.Event = field(default_factory=threading.Event)
    stream_started: bool = False
    taken_at: float = 0.0  # monotonic, when an environment's runtime took it

    def deliver(self, outcome: Outcome) -> None:
        self.stream_started = self.stream_started or outcome.kind == "stream"
        self.outcomes.put(outcome)
        if outcome.kind in ("end", "buffered", "error"):
            self.finished.set()


class Throttled(Exception):
    """Every environment the function may have is busy: Lambda answers 429 and runs nothing."""

    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"


def read_chunked(stream: BinaryIO) -> tuple[list[bytes], dict[str, str]]:
    """Parse one chunked body fully (used by tests); `iter_chunks` is the incremental form."""
    chunks: list[bytes] = []
    trailers: dict[str, str] = {}
    for chunk in iter_chunks(stream, trailers):
        chunks.append(chunk)
    return chunks, trailers


def iter_chunks(stream: BinaryIO, trailers: dict[str, str]) -> Any:
    """Yield each chunk of an HTTP/1.1 chunked body the moment it is read; fill `trailers` at the end."""
    while True:
        size_line = stream.readline(1024)
        if not size_line:
            raise ConnectionError("chunked body ended early")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        data = stream.read(size)
        if len(data) != size or stream.read(2) != b"\r\n":
            raise ConnectionError("malformed chunk")
        yield data
    while True:
        line = stream.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            return
        name, _, value = line.decode("latin-1").partition(":")
        trailers[name.strip()] = value.strip()


class RuntimeApiServer(LoopbackHTTPServer):
    """The Runtime API of one execution environment.

    An environment holds an invocation from the moment its runtime takes it until its response is
    complete, not until the runtime asks for the next one: AWS's Node client asks for the next event
    before it ends a failed stream, and Lambda still accepts that stream's end. So `/next` waits
    while the environment is full (`max_concurrency` invocations: one, unless it runs on Managed
    Instances), and a late response for a held invocation is taken.
    """

    def __init__(
        self,
        function_name: str,
        invocations: queue.Queue[Invocation],
        region: str = "us-east-1",
        max_concurrency: int = 1,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.function_name = function_name
        self.invocations = invocations
        self.max_concurrency = max_concurrency
        self.function_arn = f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{function_name}"
        self.held: dict[str, Invocation] = {}
        self.init_error: bytes | None = None
        self.last_init_error: bytes | None = None  # kept across restarts: what the last failed init said
        self.lock = threading.Lock()
        self._room = threading.Condition(self.lock)
        self._taking = 0  # `/next` calls that have a slot and wait for an invocation
        self.generation = 0  # which worker process the polls belong to (see `new_worker`)
        self.polled = threading.Event()  # set once the worker's init is over: it asked for work, or it failed
        self.polled_at = 0.0  # monotonic, when it did
        self.on_release: Callable[[Invocation], None] | None = None

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    @property
    def current(self) -> Invocation | None:
        """An invocation this environment holds (the only one, unless it serves several at once)."""
        with self.lock:
            return next(iter(self.held.values()), None)

    def holding_all(self) -> list[Invocation]:
        with self.lock:
            return list(self.held.values())

    def init_over(self) -> None:
        if not self.polled.is_set():
            self.polled_at = time.monotonic()
            self.polled.set()

    def new_worker(self) -> None:
        """A new worker process starts: polls still waiting from the last one (which died) are void."""
        with self._room:
            self.generation += 1
            self._room.notify_all()

    def take_next(self, asker_alive: Callable[[], bool] = lambda: True) -> Invocation | None:
        """The next invocation for a `/next` poll; None if the worker that asked has died or been
        replaced since: handing it an invocation would lose the invocation, which goes back to the
        front of the line for a live worker."""
        with self._room:
            generation = self.generation
            self._room.wait_for(
                lambda: len(self.held) + self._taking < self.max_concurrency or self.generation != generation
            )
            if self.generation != generation:
                return None
            self._taking += 1
        try:
            invocation = self._wait_for_invocation(generation, asker_alive)
        finally:
            with self.lock:
                self._taking -= 1
        if invocation is None:
            return None
        invocation.deadline = time.time() + invocation.timeout_seconds
        invocation.function_arn = self.function_arn
        invocation.taken_at = time.monotonic()
        with self.lock:
            self.held[invocation.request_id] = invocation
        return invocation

    def _wait_for_invocation(self, generation: int, asker_alive: Callable[[], bool]) -> Invocation | None:
        while True:
            try:
                invocation = self.invocations.get(timeout=0.1)
            except queue.Empty:
                if self.generation != generation or not asker_alive():
                    return None
                continue
            if self.generation == generation and asker_alive():
                return invocation
            with self.invocations.mutex:  # back to the front of the line, for a live worker to take
                self.invocations.queue.appendleft(invocation)
                self.invocations.not_empty.notify()
            return None

    def holding(self, request_id: str) -> Invocation | None:
        """The invocation this environment holds, if `request_id` names one."""
        with self.lock:
            return self.held.get(request_id)

    def release(self, request_id: str) -> Invocation | None:
        """Let go of a finished (or killed) invocation; only the first caller gets it."""
        with self._room:
            invocation = self.held.pop(request_id, None)
            self._room.notify_all()
        if invocation is not None and self.on_release is not None:
            self.on_release(invocation)
        return invocation

    def start(self) -> RuntimeApiServer:
        threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"runtime-api-{self.function_name}",
            daemon=True,
        ).start()
        return self


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApiServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("runtime api: " + format, *args)

    def do_GET(self) -> None:
        if self.path != f"{API_PREFIX}/runtime/invocation/next":
            self._answer(404, {"errorMessage": "unknown path"})
            return
        self.server.init_over()
        invocation = self.server.take_next(self._asker_alive)
        if invocation is None:
            self.close_connection = True
            return
        body = json.dumps(invocation.event).encode("utf-8")
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(invocation.deadline * 1000)))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn)
        self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path == f"{API_PREFIX}/runtime/init/error":
            self.server.init_error = self.server.last_init_error = self._read_body()
            logger.error("%s init error: %s", self.server.function_name, self.server.init_error[:500])
            self.server.init_over()
            self._answer(202, {"status": "OK"})
            return
        match = _RESPONSE_PATH.match(self.path)
        invocation = self.server.holding(match["id"]) if match else None
        if invocation is None:
            self._read_body()
            self._answer(400 if match else 404, {"errorMessage": "unknown or finished invocation"})
            return
        if match["kind"] == "error":
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "")
            final = Outcome("error", self._read_body(), {"error-type": error_type})
        elif self.headers.get("Lambda-Runtime-Function-Response-Mode", "").lower() == "streaming":
            final = self._relay_stream(invocation)
        else:
            final = Outcome("buffered", self._read_body())
        # the environment holds the invocation until its response is complete: a stream that
        # overruns the deadline is still this environment's to time out
        if self.server.release(invocation.request_id) is not None:
            invocation.deliver(final)
        if not self.close_connection:
            self._answer(202, {"status": "OK"})

    def _relay_stream(self, invocation: Invocation) -> Outcome:
        """Hand each chunk over as it arrives; returns the final `end` outcome with the trailers."""
        invocation.deliver(Outcome("stream", headers={"content-type": self.headers.get("Content-Type", "")}))
        trailers: dict[str, str] = {}
        try:
            for chunk in iter_chunks(self.rfile, trailers):
                invocation.deliver(Outcome("chunk", chunk))
        except (ConnectionError, ValueError) as exc:
            trailers.setdefault("Lambda-Runtime-Function-Error-Type", "Runtime.TruncatedResponse")
            logger.warning("%s stream broke off: %s", self.server.function_name, exc)
            self.close_connection = True
        return Outcome("end", headers=trailers)

    def _asker_alive(self) -> bool:
        """Whether the worker waiting on this poll still holds its connection (a dead one's is at EOF)."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return True
            return self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(read_chunked(self.rfile)[0])
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
