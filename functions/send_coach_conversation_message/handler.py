"""send-coach-conversation-message: the conversation turn without streaming (API Gateway fallback).

The very turn of the streaming function: JSON by default, or with `?stream=true` the same events
buffered into one `text/event-stream` body.
"""

from __future__ import annotations

from functions.catalog import CONVERSATION_PATH, SEND_COACH_CONVERSATION_MESSAGE
from shared.composition.conversation import conversation_turns
from shared.composition.turns import fallback_turn_handler
from shared.http.routes import ConversationStreamPath, Route, Router
from shared.settings import load_settings

SETTINGS = load_settings(SEND_COACH_CONVERSATION_MESSAGE.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

RESULT_FIELDS = ("conversationId", "userMessage", "aiMessage", "fullMessage")

handler = fallback_turn_handler(
    Router([Route("POST", f"{CONVERSATION_PATH}/send-message", ConversationStreamPath)]),
    lambda: conversation_turns(SETTINGS),
    RESULT_FIELDS,
)
