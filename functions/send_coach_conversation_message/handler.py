"""send-coach-conversation-message: the conversation turn without streaming (API Gateway fallback).

The very pipeline of the streaming function: JSON by default, or with `?stream=true` the same
events buffered into one `text/event-stream` body.
"""

from __future__ import annotations

from typing import Any

from functions.catalog import CONVERSATION_PATH, SEND_COACH_CONVERSATION_MESSAGE
from shared.coach_conversation.wiring import open_conversation_turn
from shared.fallback import collect_complete
from shared.http.event import HttpRequest
from shared.http.routes import ConversationStreamPath, Route, Router
from shared.observability import lambda_entry
from shared.settings import load_settings
from shared.streaming import JsonResponse, StreamingResponse, streaming_handler

SETTINGS = load_settings(SEND_COACH_CONVERSATION_MESSAGE.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

router = Router([Route("POST", f"{CONVERSATION_PATH}/send-message", ConversationStreamPath)])
RESULT_FIELDS = ("conversationId", "userMessage", "aiMessage", "fullMessage")


@lambda_entry
@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse | JsonResponse:
    turn = open_conversation_turn(request, context, router)
    if request.query.get("stream") == "true":
        return StreamingResponse(turn.events())
    return JsonResponse(collect_complete(turn.events(), RESULT_FIELDS))
