"""The benchmark's streaming handler: the same events the reference app sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from shared.events import ChunkEvent, CompleteEvent, SseEvent, StartEvent
from shared.http.event import HttpRequest
from shared.http.streaming import StreamingResponse, streaming_handler


def bench_events(count: int, delay: float, request_id: str) -> Iterator[SseEvent]:
    """start, `count` chunks stamped with the time they were yielded, complete."""
    yield StartEvent(requestId=request_id)
    for _ in range(count):
        if delay:
            time.sleep(delay)
        yield ChunkEvent(content=f"{time.time():.6f}")
    yield CompleteEvent()


@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse:
    count = int(request.query.get("count", "0"))
    delay = float(request.query.get("delay", "0"))
    return StreamingResponse(bench_events(count, delay, context.aws_request_id))
