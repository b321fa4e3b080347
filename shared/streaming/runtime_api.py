"""A client for the Lambda Runtime API, including its streaming response mode.

The streamed response is an HTTP/1.1 chunked POST whose body is the JSON prelude, eight NUL bytes,
then the raw body; an error after the first byte can only travel in trailers. `http.client` cannot
send trailers, so the chunk framing is ours: one event, one chunk, one `sendall`.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any

from shared.streaming.sinks import ResponseSink, response_metadata

logger = logging.getLogger(__name__)

API_VERSION = "2018-06-01"
PRELUDE_DELIMITER = b"\x00" * 8
STREAMING_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"


@dataclass(frozen=True)
class Invocation:
    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    client_context: Any
    cognito_identity: Any
    tenant_id: str | None
    event: Any


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The error document the Runtime API expects, as the stock runtime would write it."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[1:],
    }


def _json_header(value: str | None) -> Any:
    return json.loads(value) if value else None


class RuntimeApiClient:
    """One connection to the Runtime API, reused for every call: one invocation at a time."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=None)

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        for attempt in (1, 2):
            try:
                self._connection.request(method, f"/{API_VERSION}{path}", body=body, headers=headers or {})
                response = self._connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                if attempt == 2:
                    raise
                continue
            if response.status >= 400:
                logger.warning("Runtime API %s %s answered %s: %s", method, path, response.status, data[:200])
            return data
        raise AssertionError("unreachable")

    def next_invocation(self) -> Invocation:
        self._connection.request("GET", f"/{API_VERSION}/runtime/invocation/next")
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/invocation/next answered {response.status}: {body[:200]!r}")
        headers = response.headers
        return Invocation(
            request_id=headers["Lambda-Runtime-Aws-Request-Id"],
            deadline_ms=int(headers.get("Lambda-Runtime-Deadline-Ms", "0")),
            function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            trace_id=headers.get("Lambda-Runtime-Trace-Id"),
            client_context=_json_header(headers.get("Lambda-Runtime-Client-Context")),
            cognito_identity=_json_header(headers.get("Lambda-Runtime-Cognito-Identity")),
            tenant_id=headers.get("Lambda-Runtime-Aws-Tenant-Id"),
            event=json.loads(body) if body else None,
        )

    def post_response(self, request_id: str, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self._request("POST", f"/runtime/invocation/{request_id}/response", body, {"Content-Type": "application/json"})

    def post_error(self, request_id: str, exc: BaseException) -> None:
        self._post_error(f"/runtime/invocation/{request_id}/error", exc)

    def post_init_error(self, exc: BaseException) -> None:
        self._post_error("/runtime/init/error", exc)

    def _post_error(self, path: str, exc: BaseException) -> None:
        payload = error_payload(exc)
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", ERROR_TYPE_TRAILER: payload["errorType"]}
        self._request("POST", path, body, headers)

    def open_stream(self, request_id: str, payload_version: str = "2.0") -> StreamingResponseSink:
        return StreamingResponseSink(self._connection, request_id, payload_version)


class StreamingResponseSink(ResponseSink):
    """A response streamed to `/response` as it is produced.

    Writes never raise: if the Runtime API connection breaks, the handler must still run to the end
    and save its work (nothing tells a function its client went away), so later writes are dropped.
    """

    def __init__(self, connection: http.client.HTTPConnection, request_id: str, payload_version: str) -> None:
        self._connection = connection
        self._request_id = request_id
        self._payload_version = payload_version
        self.broken = False

    def start(self, status: int, headers: dict[str, str], cookies: list[str]) -> None:
        prelude = json.dumps(response_metadata(status, headers, cookies, self._payload_version)).encode("utf-8")
        connection = self._connection
        try:
            connection.putrequest(
                "POST",
                f"/{API_VERSION}/runtime/invocation/{self._request_id}/response",
                skip_accept_encoding=True,
            )
            connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.putheader("Content-Type", STREAMING_CONTENT_TYPE)
            connection.putheader("Trailer", f"{ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}")
            connection.endheaders()
        except OSError:
            self._break()
        self.started = True
        self.write(prelude + PRELUDE_DELIMITER)

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            self._connection.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        except (OSError, AttributeError):
            self._break()

    def finish(self, error: BaseException | None = None) -> None:
        trailers = b""
        if error is not None:
            payload = error_payload(error)
            encoded = base64.b64encode(json.dumps(payload).encode("utf-8"))
            trailers = b"%s: %s\r\n%s: %s\r\n" % (
                ERROR_TYPE_TRAILER.encode(),
                payload["errorType"].encode("ascii", "replace"),
                ERROR_BODY_TRAILER.encode(),
                encoded,
            )
        if self.broken:
            return
        try:
            self._connection.sock.sendall(b"0\r\n" + trailers + b"\r\n")
            response = self._connection.getresponse()
            response.read()
        except (OSError, AttributeError, http.client.HTTPException):
            self._break()

    def _break(self) -> None:
        logger.warning("Runtime API connection lost mid-stream; the handler runs on and keeps its work")
        self.broken = True
        self._connection.close()
