"""stream-coach-conversation: a coach's reply, streamed as SSE through a RESPONSE_STREAM Function URL.

Thin on purpose: the route, the settings, and the conversation's composition root; the turn handler
factory does the rest (flag, opening in the contract's order, streaming). The same handler answers
buffered under the stock runtime.
"""

from __future__ import annotations

from functions.catalog import STREAM_COACH_CONVERSATION
from shared.composition.conversation import conversation_turns
from shared.composition.turns import streaming_turn_handler
from shared.http.routes import CONVERSATION_STREAM_ROUTE, Router
from shared.settings import load_settings

SETTINGS = load_settings(STREAM_COACH_CONVERSATION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

handler = streaming_turn_handler(Router([CONVERSATION_STREAM_ROUTE]), lambda: conversation_turns(SETTINGS))
