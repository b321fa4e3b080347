"""Turn a local invocation's outcomes into an HTTP response on a real client connection.

A streamed response is relayed chunk by chunk as the Runtime API receives it (Function URLs);
`buffer_outcomes` assembles the whole answer for front doors that do not stream (HTTP APIs).
"""

from __future__ import annotations

import base64
import json
import logging
import queue
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from local.runtime_api import Invocation, Outcome

logger = logging.getLogger(__name__)

DELIMITER = b"\x00" * 8
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
RAW_CONTENT_TYPE = "application/octet-stream"
_GATEWAY_TIMEOUT_GRACE = 5.0


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    body: bytes = b""


def answer_from_proxy_result(payload: bytes) -> HttpAnswer:
    """Interpret a buffered function result the way Function URLs and HTTP APIs (2.0) do."""
    try:
        result: Any = json.loads(payload) if payload else None
    except ValueError:
        return HttpAnswer(200, {"Content-Type": "application/json"}, body=payload)
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpAnswer(200, {"Content-Type": "application/json"}, body=json.dumps(result).encode())
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    cookies = list(result.get("cookies") or ((result.get("multiValueHeaders") or {}).get("Set-Cookie") or []))
    return HttpAnswer(int(result["statusCode"]), headers, cookies, raw)


def function_error_answer() -> HttpAnswer:
    return HttpAnswer(502, {"Content-Type": "application/json"}, body=b'{"Message":"Internal Server Error"}')


def _next(invocation: Invocation) -> Outcome:
    return invocation.outcomes.get(timeout=invocation.timeout_seconds + _GATEWAY_TIMEOUT_GRACE)


def buffer_outcomes(invocation: Invocation) -> HttpAnswer:
    """Wait for the whole response of an invocation (streamed or not) and return it."""
    try:
        return _buffer(invocation)
    except queue.Empty:
        return function_error_answer()


def _buffer(invocation: Invocation) -> HttpAnswer:
    outcome = _next(invocation)
    if outcome.kind == "buffered":
        return answer_from_proxy_result(outcome.data)
    if outcome.kind != "stream":
        return function_error_answer()
    content_type = outcome.headers.get("content-type", "")
    data = b""
    while (outcome := _next(invocation)).kind == "chunk":
        data += outcome.data
    if outcome.headers.get("Lambda-Runtime-Function-Error-Type"):
        return function_error_answer()
    if not _is_http_integration(content_type):
        return HttpAnswer(200, {"Content-Type": content_type or RAW_CONTENT_TYPE}, body=data)
    prelude, delimited, body = data.partition(DELIMITER)
    if not delimited:
        return function_error_answer()
    answer = answer_from_prelude(prelude)
    answer.body = body
    return answer


def _is_http_integration(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == HTTP_INTEGRATION_CONTENT_TYPE


class _ClientGone(Exception):
    pass


def relay_outcomes(
    handler: BaseHTTPRequestHandler, invocation: Invocation, extra_headers: dict[str, str] | None = None
) -> None:
    """Answer the client from an invocation; stream chunks through the moment they arrive.

    `extra_headers` are the front door's own (CORS), added to whatever the function answers. If the
    client goes away, the function runs on (as in Lambda): we stop writing, nothing else. A stream
    that fails after its first byte (a function error, a timeout, a runtime that died) is cut: the
    connection closes without the chunked body's last chunk, so a client can tell it from a
    complete one.
    """
    extra = extra_headers or {}
    try:
        outcome = _next(invocation)
    except queue.Empty:
        send_answer(handler, function_error_answer())
        return
    if outcome.kind == "buffered":
        send_answer(handler, _with(answer_from_proxy_result(outcome.data), extra))
        return
    if outcome.kind != "stream":
        logger.error("function failed: %s", outcome.data[:500])
        send_answer(handler, _with(function_error_answer(), extra))
        return
    content_type = outcome.headers.get("content-type", "")
    if _is_http_integration(content_type):
        answer, first = _read_prelude(invocation)
    else:
        answer, first = HttpAnswer(200, {"Content-Type": content_type or RAW_CONTENT_TYPE}), b""
    if answer is None:
        send_answer(handler, _with(function_error_answer(), extra))
        return
    try:
        _send_head(handler, _with(answer, extra), chunked=True)
        _send_chunk(handler, first)
        end = _relay_chunks(handler, invocation)
        error_type = end.headers.get("Lambda-Runtime-Function-Error-Type") or end.headers.get("error-type")
        if error_type or end.kind != "end":
            logger.warning("stream ended with a function error (%s); cutting the client's response", error_type)
            handler.close_connection = True
            return
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except _ClientGone:
        logger.info("client went away mid-stream; the function runs on")
        handler.close_connection = True
    except queue.Empty:
        logger.error("no word from the function past its timeout; cutting the stream")
        handler.close_connection = True


def _read_prelude(invocation: Invocation) -> tuple[HttpAnswer | None, bytes]:
    """Read up to the prelude's delimiter: the answer's head and the body's first bytes. No head if
    the stream ended (or failed) before its prelude was whole: the client gets a 502."""
    pending = b""
    while (outcome := _next(invocation)).kind == "chunk":
        pending += outcome.data
        if DELIMITER in pending:
            prelude, _, first = pending.partition(DELIMITER)
            return answer_from_prelude(prelude), first
    return None, b""


def _relay_chunks(handler: BaseHTTPRequestHandler, invocation: Invocation) -> Outcome:
    while (outcome := _next(invocation)).kind == "chunk":
        _send_chunk(handler, outcome.data)
    return outcome


def answer_from_prelude(prelude: bytes) -> HttpAnswer:
    """A streamed response's head: `statusCode` (200 when absent), headers and cookies."""
    try:
        fields: Any = json.loads(prelude) if prelude.strip() else {}
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return HttpAnswer(200, {"Content-Type": RAW_CONTENT_TYPE})
    headers = {str(k): str(v) for k, v in (fields.get("headers") or {}).items()}
    return HttpAnswer(int(fields.get("statusCode") or 200), headers, [str(c) for c in fields.get("cookies") or []])


def _with(answer: HttpAnswer, headers: dict[str, str]) -> HttpAnswer:
    answer.headers.update(headers)
    return answer


def _send_head(handler: BaseHTTPRequestHandler, answer: HttpAnswer, *, chunked: bool) -> None:
    try:
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                handler.send_header(name, value)
        for cookie in answer.cookies:
            handler.send_header("Set-Cookie", cookie)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.flush()
    except OSError as exc:
        raise _ClientGone from exc


def _send_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    if not data:
        return
    try:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        handler.wfile.flush()
    except OSError as exc:
        raise _ClientGone from exc


def send_answer(handler: BaseHTTPRequestHandler, answer: HttpAnswer) -> None:
    """A whole response with its length; a client that went away is simply let go."""
    try:
        _send_head(handler, answer, chunked=False)
        handler.wfile.write(answer.body)
        handler.wfile.flush()
    except (OSError, _ClientGone):
        handler.close_connection = True
