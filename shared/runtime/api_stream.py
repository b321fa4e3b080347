"""A response streamed to the Runtime API's `/response` as it is produced.

The stream is an HTTP/1.1 chunked POST in `streaming` response mode. With a prelude its body is the
prelude's JSON, eight NUL bytes, then the raw body (the HTTP integration's format); without one it
is the raw body alone. An error after the first byte can only travel in trailers, and
`http.client` cannot send trailers, so the chunk framing is ours: one write, one chunk, one `sendall`.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.runtime.protocol import API_VERSION, ERROR_BODY_TRAILER, ERROR_TYPE_HEADER, error_payload
from shared.runtime.stream import ResponseStream

logger = logging.getLogger(__name__)

PRELUDE_DELIMITER = b"\x00" * 8
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
RAW_CONTENT_TYPE = "application/octet-stream"


class RuntimeApiStream(ResponseStream):
    """Streams one invocation's response over the client's connection.

    Writes never raise: if the Runtime API connection breaks, the handler must still run to the end
    and save its work (nothing tells a function its client went away), so later writes are dropped.
    """

    def __init__(self, connection: http.client.HTTPConnection, request_id: str) -> None:
        self._connection = connection
        self._request_id = request_id
        self.broken = False

    def start(self, prelude: Mapping[str, Any] | None = None, *, content_type: str | None = None) -> None:
        if self.started:
            raise RuntimeError("a response stream starts once")
        self.started = True
        content_type = (content_type or RAW_CONTENT_TYPE) if prelude is None else HTTP_INTEGRATION_CONTENT_TYPE
        connection = self._connection
        try:
            connection.putrequest(
                "POST",
                f"/{API_VERSION}/runtime/invocation/{self._request_id}/response",
                skip_accept_encoding=True,
            )
            connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.putheader("Content-Type", content_type)
            connection.putheader("Trailer", f"{ERROR_TYPE_HEADER}, {ERROR_BODY_TRAILER}")
            connection.endheaders()
        except OSError:
            self._break()
        if prelude is not None:
            self.write(json.dumps(prelude).encode("utf-8") + PRELUDE_DELIMITER)

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            self._connection.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        except (OSError, AttributeError):
            self._break()

    def finish(self, error: BaseException | None = None) -> None:
        if self.broken:
            return
        try:
            self._connection.sock.sendall(b"0\r\n" + _error_trailers(error) + b"\r\n")
            response = self._connection.getresponse()
            response.read()
        except (OSError, AttributeError, http.client.HTTPException):
            self._break()

    def _break(self) -> None:
        logger.warning("Runtime API connection lost mid-stream; the handler runs on and keeps its work")
        self.broken = True
        self._connection.close()


def _error_trailers(error: BaseException | None) -> bytes:
    """The trailers that tell Lambda a stream failed after its first byte; none on success."""
    if error is None:
        return b""
    payload = error_payload(error)
    encoded = base64.b64encode(json.dumps(payload).encode("utf-8"))
    return b"%s: %s\r\n%s: %s\r\n" % (
        ERROR_TYPE_HEADER.encode(),
        payload["errorType"].encode("ascii", "replace"),
        ERROR_BODY_TRAILER.encode(),
        encoded,
    )
