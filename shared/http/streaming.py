"""`@streaming_handler`: one handler, two deliveries.

Under our Runtime API loop the loop offers a response stream in `current_stream` and every event
goes out the moment the body yields it. Under the stock runtime (`sam local invoke`, a plain Invoke,
an HTTP API) there is none, so the same events are buffered into an ordinary proxy response.

This layer, not the runtime, speaks HTTP: it parses the event and builds the prelude for the
request's payload version (v1 from REST APIs, 2.0 from Function URLs and HTTP APIs).

Because the whole response is written inside the handler call, decorators stacked above this one
(Powertools' `inject_lambda_context` and `log_metrics`) wrap the entire stream, not just its first
line.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from shared.errors import CoachError, InvalidRequest
from shared.events import TurnFailed
from shared.http.cors import cors_headers
from shared.http.errors import Problem
from shared.http.event import HttpRequest, is_api_gateway_completion, is_http_event, parse_http_event
from shared.http.keep_alive import KeepAlive
from shared.http.proxy import BufferedProxyResponse, response_metadata
from shared.http.responses import BodyItem, JsonResponse, StreamingResponse, encode_item
from shared.observability import count_error
from shared.runtime.stream import current_stream
from shared.settings import SseSettings, settings

__all__ = ["JsonResponse", "StreamingResponse", "streaming_handler"]

logger = logging.getLogger(__name__)

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
            return _error_proxy(_counted(InvalidRequest("this function answers HTTP events only")))
        request = parse_http_event(event)
        runtime_stream = current_stream.get()
        stream = runtime_stream or BufferedProxyResponse()
        response, first, rest = _open(fn, request, context)
        headers = {**response.headers, **cors_headers(request)}
        stream.start(response_metadata(response.status, headers, response.cookies, request.payload_version))
        sse = _is_event_stream(response)
        if runtime_stream is not None and sse:
            with KeepAlive(stream, keep_alive_seconds()) as writer:
                error = _pump(writer.write, first, rest, sse)
        else:
            error = _pump(stream.write, first, rest, sse)
        # An event stream tells its failure in its last event, so it ends as a whole HTTP message: a
        # Function URL may cut a response whose runtime reports an error after the first byte, and a
        # client must still read that event. Any other body has no way to say it failed but the cut.
        stream.finish(None if sse else error)
        return stream.proxy_response() if isinstance(stream, BufferedProxyResponse) else None

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
        response = _error_response(_counted(exc))
    except Exception as exc:
        logger.exception("handler failed before the response started")
        response = _error_response(_counted(exc))
    body = iter(response.body)
    return response, next(body), body


def _counted(exc: BaseException) -> Problem:
    """The problem an error is answered with, counted under its contract code (the alarms read these)."""
    problem = Problem.of(exc)
    count_error(problem.code)
    return problem


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
        for item in rest if first is _END else itertools.chain((first,), rest):
            if isinstance(item, TurnFailed):  # the turn tells its failure in its last event: counted like any other
                count_error(Problem.of(item.error).code)
            write(encode_item(item))  # type: ignore[arg-type]
    except Exception as exc:
        logger.exception("stream failed after it started")
        problem = _counted(exc)
        if sse:
            write(encode_item(problem.event()))
        return exc
    return None


def _is_event_stream(response: StreamingResponse) -> bool:
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    return content_type.startswith("text/event-stream")
