"""stream-coach-creator-session: one interview answer, streamed as SSE through a Function URL.

Thin on purpose: check the request, load the session, hand the answer to the interview pipeline.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from shared.http.errors import NotFound
from shared.http.event import HttpRequest
from shared.http.routes import CREATOR_SESSION_STREAM_ROUTE, Router
from shared.http.stream_request import open_stream_request
from shared.store.creator_sessions import DynamoCreatorSessionRepository
from shared.streaming import StreamingResponse, streaming_handler

logger = Logger()
router = Router([CREATOR_SESSION_STREAM_ROUTE])
sessions = DynamoCreatorSessionRepository()


@logger.inject_lambda_context(clear_state=True)
@streaming_handler
def handler(request: HttpRequest, context: Any) -> StreamingResponse:
    turn = open_stream_request(request, router)
    logger.append_keys(user_id=turn.user.user_id)
    session = sessions.get_session(turn.path.user_id, turn.path.session_id)
    if session is None:
        raise NotFound("coach creator session not found")
    raise NotFound("coach creator session not found")
