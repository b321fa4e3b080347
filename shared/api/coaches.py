"""The user's coaches and their conversations (CONTRACT.md section 3)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from shared.api.bodies import CreateConversationBody
from shared.api.documented import operation
from shared.api.paths import (
    CREATE_CONVERSATION,
    GET_COACH,
    GET_CONVERSATION,
    LIST_COACHES,
    CoachPath,
    ConversationPath,
    UserPath,
)
from shared.api.routing import endpoint
from shared.api.schemas import CoachList, ConversationWithMessages
from shared.api.services import Services
from shared.errors import NotFound
from shared.store.records import Coach, Conversation

router = Router()


@endpoint(router, LIST_COACHES, doc=operation("The user's coaches", CoachList))
def list_coaches(path: UserPath, services: Services) -> dict[str, Any]:
    return {"coaches": [coach.api() for coach in services.coaches.list_coaches(path.user_id)]}


@endpoint(router, GET_COACH, doc=operation("One coach's configuration", Coach))
def get_coach(path: CoachPath, services: Services) -> dict[str, Any]:
    coach = services.coaches.get_coach(path.user_id, path.coach_id)
    if coach is None:
        raise NotFound("coach not found")
    return coach.api()


@endpoint(
    router,
    CREATE_CONVERSATION,
    body=CreateConversationBody,
    doc=operation("Start a conversation with a coach", Conversation, status=201, body=True),
)
def create_conversation(path: CoachPath, services: Services, body: CreateConversationBody) -> Response:
    if services.coaches.get_coach(path.user_id, path.coach_id) is None:
        raise NotFound("coach not found")
    conversation = services.conversations.create_conversation(path.user_id, path.coach_id, body.title)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=conversation.api())


@endpoint(router, GET_CONVERSATION, doc=operation("A conversation with its messages", ConversationWithMessages))
def get_conversation(path: ConversationPath, services: Services) -> dict[str, Any]:
    conversation = services.conversations.get_conversation(path.user_id, path.coach_id, path.conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    messages = services.conversations.list_messages(path.user_id, path.conversation_id)
    return {"conversation": conversation.api(), "messages": [message.contract() for message in messages]}
