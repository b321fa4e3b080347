"""`@streaming_handler`: one handler, two deliveries.

Under our Runtime API loop the loop puts a streaming sink in `current_sink` and every event goes
out the moment the body yields it. Under the stock runtime (`sam local invoke`, a plain Invoke, an
HTTP API) there is no sink, so the same events are buffered into an ordinary proxy response.

Because the whole response is written inside the handler call, decorators stacked above this one
(Powertools' `inject_lambda_context`, `log_metrics`, `capture_lambda_handler`) wrap the entire
stream, not just its first line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from shared.errors import CoachError, InvalidRequest
from shared.http.cors import cors_headers
from shared.http.errors import Problem
from shared.http.event import HttpRequest, is_api_gateway_completion, is_http_event, parse_http_event
from shared.settings import SseSettings, settings
from shared.streaming.response import BodyItem, JsonResponse, StreamingResponse, encode_item
from shared.streaming.sinks import BufferedSink, KeepAlive, ResponseSink

logger = logging.getLogger(__name__)

current_sink: ContextVar[ResponseSink | None] = ContextVar("current_sink", default=None)

Handler = Callable[[HttpRequest, Any], StreamingResponse | JsonResponse]
LambdaHandler = Callable[[Any, Any], dict[str, Any] | None]

_END = object()


def keep_alive_seconds() -> float:
    return settings(SseSettings).keep_alive_seconds


def streaming_handler(fn: Handler) -> LambdaHandler:
    """Turn `fn(request, context) -> response` into a Lambda handler that streams or buffers."""

    @functools.wraps(fn)
    def lambda_handler(event: Any, context: Any) -> dict[str, Any] | None:
        if not is_http_event(event):
            if is_api_gateway_completion(event):
                logger.debug("API Gateway completion invocation acknowledged")
                return {}
            return _error_proxy(Problem.of(InvalidRequest("this function answers HTTP events only")))
        request = parse_http_event(event)
        streaming_sink = current_sink.get()
        sink = streaming_sink or BufferedSink(request.payload_version)
        response, first, rest = _open(fn, request, context)
        sink.start(response.status, {**response.headers, **cors_headers(request)}, response.cookies)
        if streaming_sink is not None and _is_event_stream(response):
            with KeepAlive(sink, keep_alive_seconds()) as writer:
                error = _pump(writer.write, first, rest, _is_event_stream(response))
        else:
            error = _pump(sink.write, first, rest, _is_event_stream(response))
        sink.finish(error)
        return sink.proxy_response() if isinstance(sink, BufferedSink) else None

    return lambda_handler


def _open(fn: Handler, request: HttpRequest, context: Any) -> tuple[StreamingResponse, object, Iterator[BodyItem]]:
    """Call the handler and pull the body's first item: until then, errors still get a status."""
    try:
        response = fn(request, context)
        if isinstance(response, JsonResponse):
            response = response.as_streaming()
        body = iter(response.body)
        return response, next(body, _END), body
    except CoachError as exc:
        response = _error_response(Problem.of(exc))
    except Exception as exc:
        logger.exception("handler failed before the response started")
        response = _error_response(Problem.of(exc))
    body = iter(response.body)
    return response, next(body), body


def _error_response(problem: Problem) -> StreamingResponse:
    return JsonResponse(problem.body(), status=problem.status, headers=problem.headers).as_streaming()


def _error_proxy(problem: Problem) -> dict[str, Any]:
    return {
        "statusCode": problem.status,
        "headers": {"Content-Type": "application/json"},
        "body": problem.body_json(),
        "isBase64Encoded": False,
    }


def _pump(write: Callable[[bytes], None], first: object, rest: Iterator[BodyItem], sse: bool) -> BaseException | None:
    """Write every item as it comes; a failure mid-stream ends the stream with an `error` event."""
    try:
        if first is not _END:
            write(encode_item(first))  # type: ignore[arg-type]
        for item in rest:
            write(encode_item(item))
    except Exception as exc:
        logger.exception("stream failed after it started")
        if sse:
            write(encode_item(Problem.of(exc).event()))
        return exc
    return None


def _is_event_stream(response: StreamingResponse) -> bool:
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    return content_type.startswith("text/event-stream")
