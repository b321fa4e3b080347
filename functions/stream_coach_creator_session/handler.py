"""stream-coach-creator-session: one interview answer, streamed as SSE through a Function URL.

Thin on purpose: the route, the settings, and the creator's composition root; the turn handler
factory does the rest (flag, opening in the contract's order, streaming).
"""

from __future__ import annotations

from functions.catalog import STREAM_COACH_CREATOR_SESSION
from shared.composition.creator import creator_turns
from shared.composition.turns import streaming_turn_handler
from shared.http.routes import CREATOR_SESSION_STREAM_ROUTE, Router
from shared.settings import load_settings

SETTINGS = load_settings(STREAM_COACH_CREATOR_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

handler = streaming_turn_handler(Router([CREATOR_SESSION_STREAM_ROUTE]), lambda: creator_turns(SETTINGS))
