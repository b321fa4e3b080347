"""stream-coach-conversation: a coach's reply, streamed as SSE through a RESPONSE_STREAM Function URL.

Thin on purpose: check the request, load the conversation, hand the turn to the pipeline. The
same handler answers buffered under the stock runtime (`sam local invoke`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from shared.http.errors import NotFound
from shared.http.event import HttpRequest
from shared.http.routes import CONVERSATION_STREAM_ROUTE, Router
from shared.http.stream_request import open_stream_request
from shared.store.conversations import DynamoConversationRepository
from shared.streaming import StreamingResponse, streaming_handler

logger = Logger()
router = Router([CONVERSATION_STREAM_ROUTE])
conversations = DynamoConversationRepository()


@logger.inject_lambda_context(clear_state=True)
@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse:
    turn = open_stream_request(request, router)
    logger.append_keys(user_id=turn.user.user_id)
    path = turn.path
    conversation = conversations.get_conversation(path.user_id, path.coach_id, path.conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    raise NotFound("conversation not found")
