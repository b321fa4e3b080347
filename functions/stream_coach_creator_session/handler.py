"""stream-coach-creator-session: one interview answer, streamed as SSE through a Function URL.

Thin on purpose: check the flag, open the turn (auth, validation, rate limit, claim the session),
and hand the turn's events to the adapter.
"""

from __future__ import annotations

from typing import Any

from functions.catalog import STREAM_COACH_CREATOR_SESSION
from shared.coach_creator.wiring import open_creator_turn
from shared.errors import StreamingDisabled
from shared.flags import streaming_enabled
from shared.http.event import HttpRequest
from shared.http.routes import CREATOR_SESSION_STREAM_ROUTE, Router
from shared.observability import lambda_entry
from shared.settings import load_settings
from shared.streaming import StreamingResponse, streaming_handler

SETTINGS = load_settings(STREAM_COACH_CREATOR_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

router = Router([CREATOR_SESSION_STREAM_ROUTE])


@lambda_entry
@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse:
    if not streaming_enabled():
        raise StreamingDisabled()
    turn = open_creator_turn(request, context, router)
    return StreamingResponse(turn.events())
