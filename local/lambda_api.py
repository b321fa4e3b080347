"""A local Lambda Invoke API, so `LambdaAsyncJobQueue` (boto3 `lambda.invoke`) runs unchanged locally.

It speaks the real wire API that botocore parses: `POST /2015-03-31/functions/{name}/invocations`,
with `X-Amz-Invocation-Type` `RequestResponse` (run, answer the result), `Event` (answer 202 at once,
run in the background with Lambda's retries) or `DryRun` (204). Errors carry `x-amzn-ErrorType`, so
botocore raises the modelled exceptions. The functions are anything with `invoke(event) -> Invocation`,
normally `local.functions.LocalFunction`.

An `Event` invocation follows the function's `AWS::Lambda::EventInvokeConfig` of the templates
(`AsyncInvokeConfig.from_template`): its retry attempts (Lambda's default, two, without one), its maximum
event age, and its on-failure destination. After the last failed attempt, or once the event is too old,
Lambda's invocation record (`invocation_record`) goes to that destination as Lambda sends it, with the
function's own role (so the IAM gate judges the send against the function's synthesized policy): a Lambda
function is invoked asynchronously with the record as its event, an SQS queue gets it as a message body.
Retries here wait seconds (`retry_delays`), not Lambda's one and two minutes.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
DEFAULT_RETRY_ATTEMPTS = 2  # Lambda's, for a function without an EventInvokeConfig
DEFAULT_MAX_EVENT_AGE_SECONDS = 6 * 3600
_INVOKE_CONFIG_PROPERTIES = frozenset(
    {"FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"}
)


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
    condition: str = ""  # why Lambda gave up on a failed one: RetriesExhausted or EventAgeExceeded
    delivered_to: str | None = None  # the on-failure destination its invocation record went to


class InvokeConfigError(ValueError):
    """An `EventInvokeConfig` in the template that this emulation cannot run faithfully."""


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """One `AWS::Lambda::EventInvokeConfig`, its function and destination resolved to local values."""

    function_name: str
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    max_event_age_seconds: int = DEFAULT_MAX_EVENT_AGE_SECONDS
    on_failure: str | None = None  # a Lambda function ARN or an SQS queue ARN

    @classmethod
    def from_template(
        cls, logical_id: str, properties: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> AsyncInvokeConfig:
        unknown = sorted(set(properties) - _INVOKE_CONFIG_PROPERTIES)
        if unknown:
            raise InvokeConfigError(f"{logical_id}: {unknown} not emulated locally")
        if properties.get("Qualifier", "$LATEST") != "$LATEST":
            raise InvokeConfigError(f"{logical_id}: only $LATEST runs locally, not {properties['Qualifier']}")
        destinations = properties.get("DestinationConfig") or {}
        if "OnSuccess" in destinations:
            raise InvokeConfigError(f"{logical_id}: on-success destinations are not emulated locally")
        destination = resolve((destinations.get("OnFailure") or {}).get("Destination"))
        if destination is not None and not str(destination).startswith(("arn:aws:lambda:", "arn:aws:sqs:")):
            raise InvokeConfigError(f"{logical_id}: only Lambda and SQS destinations run locally, not {destination}")
        return cls(
            function_name=function_name_of(str(resolve(properties["FunctionName"]))),
            retry_attempts=int(properties.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)),
            max_event_age_seconds=int(properties.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_SECONDS)),
            on_failure=str(destination) if destination is not None else None,
        )


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    event: Any,
    last: InvokeResult | None,
    at: float,
) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination (`shared.jobs.invocation_record` reads it):
    the request, why Lambda gave up, and the last attempt's error, if an attempt ran."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
    }
    if last is not None:
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        try:
            record["responsePayload"] = json.loads(last.payload)
        except ValueError:
            record["responsePayload"] = last.payload.decode("utf-8", "replace")
    return record


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
        async_configs: Mapping[str, AsyncInvokeConfig] | None = None,
        sqs_endpoint: str | None = None,
    ) -> None:
        super().__init__((host, port), _LambdaApiHandler)
        self.functions = dict(functions)
        self.retry_delays = tuple(retry_delays) or (0.0,)
        self.async_configs = dict(async_configs or {})  # by function name, from the templates
        self.sqs_endpoint = sqs_endpoint  # where an SQS on-failure destination lives
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

    def run_async(self, request_id: str, name: str, event: Any, received: float | None = None) -> None:
        """Run one `Event` invocation to its end, retrying failures as the function's EventInvokeConfig says,
        then hand Lambda's invocation record of a failure to its on-failure destination."""
        function = self.functions[name]
        config = self.async_configs.get(name) or AsyncInvokeConfig(name)
        received = time.time() if received is None else received
        attempts, condition = 0, "RetriesExhausted"
        last: InvokeResult | None = None
        for retry in range(config.retry_attempts + 1):
            if retry and self._stopping.wait(self.retry_delays[min(retry, len(self.retry_delays)) - 1]):
                return  # the stack is stopping: nothing more runs, as when a function is deleted
            if time.time() - received > config.max_event_age_seconds:
                condition = "EventAgeExceeded"
                break
            attempts += 1
            last = self._run_unthrottled(function, event)
            if last.succeeded:
                break
            logger.warning(
                "%s async attempt %d failed (%s): %s",
                name,
                attempts,
                last.error_type,
                last.payload[:300].decode("utf-8", "replace"),
            )
        result = last or InvokeResult(False, b"")
        delivered_to = None
        if not result.succeeded:
            logger.error("%s async invocation %s gave up after %d attempts (%s)", name, request_id, attempts, condition)
            record = invocation_record(
                request_id=request_id,
                function_arn=self.function_arn(name),
                condition=condition,
                attempts=attempts,
                event=event,
                last=last,
                at=time.time(),
            )
            delivered_to = self._send_on_failure(name, config.on_failure, record)
        final = AsyncResult(
            request_id,
            name,
            attempts,
            result.succeeded,
            result.payload,
            result.error_type,
            condition="" if result.succeeded else condition,
            delivered_to=delivered_to,
        )
        with self._results_changed:
            self.async_results.append(final)
            self._results_changed.notify_all()
        if self.on_async_result is not None:
            self.on_async_result(final)

    def _send_on_failure(self, source: str, destination: str | None, record: dict[str, Any]) -> str | None:
        """Send `record` to `destination` as Lambda does, with the source function's role (locally, its name is the
        access key): invoke a function asynchronously, or send to a queue. Returns the destination, or None when
        there is none or the send failed (Lambda then counts a `DestinationDeliveryFailures`)."""
        if destination is None:
            logger.error("%s: invocation record discarded: no on-failure destination", source)
            return None
        credentials = {
            "region_name": self.region,
            "aws_access_key_id": source,
            "aws_secret_access_key": "local",
            "config": Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=10),
        }
        body = json.dumps(record)
        try:
            if destination.startswith("arn:aws:sqs:"):
                _, _, _, _, owner, queue_name = destination.split(":", 5)
                sqs = boto3.client("sqs", endpoint_url=self.sqs_endpoint, **credentials)
                sqs.send_message(QueueUrl=f"{self.sqs_endpoint}/{owner}/{queue_name}", MessageBody=body)
            else:
                client = boto3.client("lambda", endpoint_url=self.url, **credentials)
                client.invoke(FunctionName=destination, InvocationType="Event", Payload=body.encode("utf-8"))
        except (BotoCoreError, ClientError):
            logger.exception("%s: invocation record could not be sent to %s", source, destination)
            return None
        logger.error("%s: invocation record sent to %s", source, destination)
        return destination


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
                args=(request_id, name, event, time.time()),
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
