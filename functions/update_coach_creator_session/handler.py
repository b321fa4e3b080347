"""update-coach-creator-session: one interview answer without streaming (API Gateway fallback).

The very pipeline of the streaming function: JSON shaped like the `complete` event, or with
`?stream=true` the same events buffered into one `text/event-stream` body.
"""

from __future__ import annotations

from typing import Any

from functions.catalog import UPDATE_COACH_CREATOR_SESSION
from shared.coach_creator.wiring import open_creator_turn
from shared.fallback import collect_complete
from shared.http.event import HttpRequest
from shared.http.routes import CreatorSessionStreamPath, Route, Router
from shared.observability import lambda_entry
from shared.settings import load_settings
from shared.streaming import JsonResponse, StreamingResponse, streaming_handler

SETTINGS = load_settings(UPDATE_COACH_CREATOR_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

router = Router([Route("PUT", "/users/{userId}/coach-creator-sessions/{sessionId}", CreatorSessionStreamPath)])
RESULT_FIELDS = ("sessionId", "aiResponse", "isComplete", "nextQuestion", "progressDetails", "coachConfigGenerating")


@lambda_entry
@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse | JsonResponse:
    turn = open_creator_turn(request, context, router)
    if request.query.get("stream") == "true":
        return StreamingResponse(turn.events())
    return JsonResponse(collect_complete(turn.events(), RESULT_FIELDS))
