"""A local Lambda Function URL in RESPONSE_STREAM mode: HTTP in, event 2.0 to the function, stream out."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from local.functions import LocalFunction
from local.http_events import build_v2_event
from local.processes import LoopbackHTTPServer
from local.relay import HttpAnswer, relay_outcomes, send_answer

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Function URLs refuse larger request payloads


class FunctionUrlServer(LoopbackHTTPServer):
    def __init__(self, function: LocalFunction, port: int, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _FunctionUrlHandler)
        self.function = function
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
        relay_outcomes(self, self.server.function.invoke(event))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def do_OPTIONS(self) -> None:
        """Preflight is the Function URL's CORS configuration's job, not the function's."""
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
        self.send_header("Access-Control-Max-Age", "300")
        self.send_header("Content-Length", "0")
        self.end_headers()
