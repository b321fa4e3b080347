"""A client for the Lambda Runtime API: next invocation, buffered response, errors, streams."""

from __future__ import annotations

import http.client
import json
import logging
from dataclasses import dataclass
from typing import Any

from shared.runtime.api_stream import RuntimeApiStream
from shared.runtime.protocol import API_VERSION, ERROR_TYPE_HEADER, error_payload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invocation:
    """One event from `/invocation/next`, with what its headers say about it."""

    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    client_context: Any
    cognito_identity: Any
    tenant_id: str | None
    event: Any


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
        headers = {"Content-Type": "application/json", ERROR_TYPE_HEADER: payload["errorType"]}
        self._request("POST", path, body, headers)

    def open_stream(self, request_id: str) -> RuntimeApiStream:
        """A stream for the invocation's response; nothing goes out until the handler starts it."""
        return RuntimeApiStream(self._connection, request_id)
