"""A local Lambda Invoke API, so `LambdaAsyncJobQueue` (boto3 `lambda.invoke`) runs unchanged locally.

It speaks the real wire API that botocore parses: `POST /2015-03-31/functions/{name}/invocations`,
with `X-Amz-Invocation-Type` `RequestResponse` (run, answer the result), `Event` (answer 202 at once,
run in the background with Lambda's retries: two more attempts after a failure, with delays) or
`DryRun` (204). Errors carry `x-amzn-ErrorType`, so botocore raises the modelled exceptions.
The functions are anything with `invoke(event) -> Invocation`, normally `local.functions.LocalFunction`.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from local.processes import LoopbackHTTPServer
from local.runtime_api import Invocation, Outcome, Throttled

if TYPE_CHECKING:
    from local.iam_gate import IamGate

logger = logging.getLogger(__name__)

API_VERSION = "2015-03-31"
_INVOKE_PATH = re.compile(rf"^/{API_VERSION}/functions/(?P<name>[^/]+)/invocations$")
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
DEFAULT_RETRY_DELAYS = (1.0, 2.0)  # Lambda waits about 1 and 2 minutes; seconds are enough locally
_RESULT_GRACE_SECONDS = 5.0
THROTTLE_RETRY_SECONDS = 0.5


class Invocable(Protocol):
    def invoke(self, event: Any) -> Invocation: ...


@dataclass(frozen=True)
class InvokeResult:
    """How one attempt ended: the result bytes, or the function's error document."""

    succeeded: bool
    payload: bytes
    error_type: str = ""


@dataclass(frozen=True)
class AsyncResult:
    """The final outcome of one `Event` invocation, after its retries."""

    request_id: str
    function_name: str
    attempts: int
    succeeded: bool
    payload: bytes
    error_type: str = ""


def function_name_of(name_or_arn: str) -> str:
    """`name`, `name:qualifier`, `123456789012:function:name` and full ARNs all name `name`."""
    parts = unquote(name_or_arn).split(":")
    if "function" in parts[:-1]:
        return parts[parts.index("function") + 1]
    return parts[0]


def run_invocation(function: Invocable, event: Any) -> InvokeResult:
    """Invoke and wait for the whole result; a streamed response is collected like a buffered one."""
    invocation = function.invoke(event)
    wait = invocation.timeout_seconds + _RESULT_GRACE_SECONDS
    collected = b""
    try:
        while True:
            outcome: Outcome = invocation.outcomes.get(timeout=wait)
            if outcome.kind == "buffered":
                return InvokeResult(True, outcome.data)
            if outcome.kind == "error":
                return _error_result(outcome)
            if outcome.kind == "chunk":
                collected += outcome.data
            elif outcome.kind == "end":
                error_type = outcome.headers.get("Lambda-Runtime-Function-Error-Type", "")
                if error_type:
                    return InvokeResult(False, _error_document(error_type, "the response stream failed"))
                return InvokeResult(True, collected)
    except queue.Empty:
        message = f"Task timed out after {invocation.timeout_seconds:.2f} seconds"
        return InvokeResult(False, _error_document("Sandbox.Timedout", message), "Sandbox.Timedout")


def _error_result(outcome: Outcome) -> InvokeResult:
    error_type = outcome.headers.get("error-type", "") or "Runtime.Unknown"
    payload = outcome.data or _error_document(error_type, "the function failed")
    return InvokeResult(False, payload, error_type)


def _error_document(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode("utf-8")


class LambdaApiServer(LoopbackHTTPServer):
    """The Invoke API for a set of local functions, on an ephemeral loopback port by default.

    `async_results` keeps the final outcome of every `Event` invocation (and `on_async_result` hears
    each one), so tests and the stack can tell when background work finished and how.
    """

    def __init__(
        self,
        functions: Mapping[str, Invocable],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        on_async_result: Callable[[AsyncResult], None] | None = None,
        region: str = "us-east-1",
        account: str = "000000000000",
        iam: IamGate | None = None,
    ) -> None:
        super().__init__((host, port), _LambdaApiHandler)
        self.functions = dict(functions)
        self.retry_delays = tuple(retry_delays)
        self.on_async_result = on_async_result
        self.region = region
        self.account = account
        self.iam = iam  # checks and records each call against the caller's IAM policy
        self.async_results: list[AsyncResult] = []
        self._results_changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def start(self) -> LambdaApiServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="lambda-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; background retries still waiting give up instead of running."""
        self._stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def wait_for_async_results(self, count: int, timeout: float) -> bool:
        """True once at least `count` `Event` invocations have reached their final outcome."""
        with self._results_changed:
            return self._results_changed.wait_for(lambda: len(self.async_results) >= count, timeout)

    def _run_unthrottled(self, function: Invocable, event: Any) -> InvokeResult:
        """A throttled `Event` invocation waits and tries again without using up an attempt, as
        Lambda's internal queue does (for hours there; until the stack stops here)."""
        while True:
            try:
                return run_invocation(function, event)
            except Throttled:
                if self._stopping.wait(THROTTLE_RETRY_SECONDS):
                    return InvokeResult(False, _error_document("TooManyRequestsException", "Rate Exceeded."))

    def run_async(self, request_id: str, name: str, event: Any) -> None:
        """Run one `Event` invocation to its end, retrying failures as Lambda does."""
        function = self.functions[name]
        attempts = 0
        result = InvokeResult(False, b"")
        for delay in (0.0, *self.retry_delays):
            if delay and self._stopping.wait(delay):
                break
            attempts += 1
            result = self._run_unthrottled(function, event)
            if result.succeeded:
                break
            logger.warning(
                "%s async attempt %d failed (%s): %s",
                name,
                attempts,
                result.error_type,
                result.payload[:300].decode("utf-8", "replace"),
            )
        if not result.succeeded:
            logger.error("%s async invocation %s gave up after %d attempts", name, request_id, attempts)
        final = AsyncResult(request_id, name, attempts, result.succeeded, result.payload, result.error_type)
        with self._results_changed:
            self.async_results.append(final)
            self._results_changed.notify_all()
        if self.on_async_result is not None:
            self.on_async_result(final)


class _LambdaApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LambdaApiServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("lambda api: " + format, *args)

    def do_POST(self) -> None:
        request_id = str(uuid.uuid4())
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _INVOKE_PATH.match(urlsplit(self.path).path)
        if match is None:
            self._error(404, "UnknownOperationException", "unknown operation", request_id)
            return
        if self.server.iam is not None:
            denial = self.server.iam.screen("POST", self.path, dict(self.headers.items()), body, service="lambda")
            if denial is not None:
                self._send(denial.status, denial.body, request_id, denial.headers)
                return
        name = function_name_of(match["name"])
        function = self.server.functions.get(name)
        if function is None:
            message = f"Function not found: {self.server.function_arn(name)}"
            self._error(404, "ResourceNotFoundException", message, request_id)
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            message = f"invalid invocation type {invocation_type!r}"
            self._error(400, "InvalidParameterValueException", message, request_id)
            return
        limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        if len(body) > limit:
            message = f"Request must be smaller than {limit} bytes for the {invocation_type} invocation type"
            self._error(413, "RequestTooLargeException", message, request_id)
            return
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError:
            message = "Could not parse request body into json"
            self._error(400, "InvalidRequestContentException", message, request_id)
            return
        if invocation_type == "DryRun":
            self._send(204, b"", request_id)
        elif invocation_type == "Event":
            self._send(202, b"", request_id)
            threading.Thread(
                target=self.server.run_async,
                args=(request_id, name, event),
                name=f"async-{name}",
                daemon=True,
            ).start()
        else:
            self._answer_sync(function, event, request_id)

    def _answer_sync(self, function: Invocable, event: Any, request_id: str) -> None:
        try:
            result = run_invocation(function, event)
        except Throttled as exc:
            body = {"Type": "User", "message": "Rate Exceeded.", "Reason": exc.reason}
            headers = {"x-amzn-ErrorType": "TooManyRequestsException", "Content-Type": "application/json"}
            self._send(429, json.dumps(body).encode("utf-8"), request_id, headers)
            return
        headers = {"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}
        if not result.succeeded:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(200, result.payload, request_id, headers)

    def _error(self, status: int, error_type: str, message: str, request_id: str) -> None:
        body = json.dumps({"Type": "User", "message": message}).encode("utf-8")
        headers = {"x-amzn-ErrorType": error_type, "Content-Type": "application/json"}
        self._send(status, body, request_id, headers)

    def _send(self, status: int, body: bytes, request_id: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("x-amzn-RequestId", request_id)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
