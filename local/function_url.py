"""A local Lambda Function URL in RESPONSE_STREAM mode: HTTP in, event 2.0 to the function, stream out."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from local.functions import LocalFunction, Throttled
from local.http_events import build_v2_event
from local.processes import LoopbackHTTPServer
from local.relay import HttpAnswer, relay_outcomes, send_answer

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Function URLs refuse larger request payloads
THROTTLED_BODY = b'{"Message":"Rate Exceeded."}'


class FunctionUrlServer(LoopbackHTTPServer):
    def __init__(
        self, function: LocalFunction, port: int, host: str = "127.0.0.1", allowed_origins: tuple[str, ...] = ()
    ) -> None:
        super().__init__((host, port), _FunctionUrlHandler)
        self.function = function
        self.allowed_origins = allowed_origins
        self.url_id = uuid.uuid5(uuid.NAMESPACE_URL, function.spec.name).hex[:32]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FunctionUrlServer:
        threading.Thread(target=self.serve_forever, name=f"function-url-{self.function.spec.name}", daemon=True).start()
        return self


class _FunctionUrlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FunctionUrlServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.server.function.spec.name, format % args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            message = {"Message": f"Request must be smaller than {MAX_REQUEST_BYTES} bytes"}
            send_answer(self, HttpAnswer(413, {"Content-Type": "application/json"}, body=json.dumps(message).encode()))
            return
        body = self.rfile.read(length) if length else b""
        event = build_v2_event(
            self.command,
            self.path,
            self.headers,
            body,
            self.client_address[0],
            api_id=self.server.url_id,
            domain_name=f"{self.server.url_id}.lambda-url.us-east-1.on.aws",
        )
        try:
            invocation = self.server.function.invoke(event)
        except Throttled:
            send_answer(
                self, HttpAnswer(429, {"Content-Type": "application/json", **self._cors()}, body=THROTTLED_BODY)
            )
            return
        relay_outcomes(self, invocation, self._cors())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _cors(self) -> dict[str, str]:
        """The Function URL's CORS configuration: only the configured origins get the headers."""
        origin = self.headers.get("Origin")
        if not origin or origin not in self.server.allowed_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def do_OPTIONS(self) -> None:
        """Preflight is the Function URL's CORS configuration's job, not the function's."""
        cors = self._cors()
        if cors:
            cors |= {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "authorization, content-type",
                "Access-Control-Max-Age": "300",
            }
        send_answer(self, HttpAnswer(204 if cors else 403, cors))
