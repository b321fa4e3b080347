"""update-coach-creator-session: one interview answer without streaming (API Gateway fallback).

The very turn of the streaming function: JSON shaped like the `complete` event, or with
`?stream=true` the same events buffered into one `text/event-stream` body.
"""

from __future__ import annotations

from functions.catalog import UPDATE_COACH_CREATOR_SESSION
from shared.composition.creator import creator_turns
from shared.composition.turns import fallback_turn_handler
from shared.http.routes import CreatorSessionStreamPath, Route, Router
from shared.settings import load_settings

SETTINGS = load_settings(UPDATE_COACH_CREATOR_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

RESULT_FIELDS = ("sessionId", "aiResponse", "isComplete", "nextQuestion", "progressDetails", "coachConfigGenerating")

handler = fallback_turn_handler(
    Router([Route("PUT", "/users/{userId}/coach-creator-sessions/{sessionId}", CreatorSessionStreamPath)]),
    lambda: creator_turns(SETTINGS),
    RESULT_FIELDS,
)
