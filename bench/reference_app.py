"""The common way: FastAPI + uvicorn `StreamingResponse` (what Lambda Web Adapter would front).

Two routes. `POST /events` sends the benchmark handler's events. Any other POST is a conversation
turn served through stream-coach-conversation's own pieces: its settings (loaded at import, as its
handler module does), its composition root and `open_turn`, the events SSE-encoded by the same code.
What differs is only the server around the turn, so a cold request compares like for like. Run it
with the conversation function's environment.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from functools import cache

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bench.handlers import bench_events
from functions.catalog import STREAM_COACH_CONVERSATION
from functions.stream_coach_conversation.handler import SETTINGS
from shared.composition.conversation import conversation_turns
from shared.composition.turns import Turn, open_turn
from shared.errors import CoachError, StreamingDisabled
from shared.flags import streaming_enabled
from shared.http.errors import Problem
from shared.http.event import HttpRequest
from shared.http.routes import CONVERSATION_STREAM_ROUTE, Router
from shared.http.sse import SSE_HEADERS, encode

app = FastAPI()
ROUTER = Router([CONVERSATION_STREAM_ROUTE])
turn_entry = cache(lambda: conversation_turns(SETTINGS))


class TurnContext:
    """What a turn reads of Lambda's context: a request id and the time left (the function's timeout)."""

    def __init__(self, timeout_seconds: float = STREAM_COACH_CONVERSATION.timeout_seconds) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@app.post("/events")
def events(count: int = 0, delay: float = 0.0) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        for event in bench_events(count, delay, str(uuid.uuid4())):
            yield encode(event)

    return StreamingResponse(body(), headers=SSE_HEADERS)


def _open(request: HttpRequest) -> Turn:
    if not streaming_enabled():
        raise StreamingDisabled()
    return open_turn(turn_entry(), request, TurnContext(), ROUTER)


@app.post("/{path:path}")
async def conversation_turn(request: Request) -> Response:
    http_request = HttpRequest(
        method=request.method,
        path=request.url.path,
        headers=dict(request.headers),
        query=dict(request.query_params),
        raw_body=base64.b64encode(await request.body()).decode("ascii"),
        is_base64_encoded=True,
        request_id=str(uuid.uuid4()),
        source_ip=request.client.host if request.client else None,
    )
    try:
        turn = await run_in_threadpool(_open, http_request)  # blocking calls, off the event loop
    except CoachError as exc:
        problem = Problem.of(exc)
        return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers)
    return StreamingResponse((encode(event) for event in turn.events()), headers=SSE_HEADERS)
