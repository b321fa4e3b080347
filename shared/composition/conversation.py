"""The conversation turn's composition root (streaming function and fallback alike)."""

from __future__ import annotations

from functools import partial

from shared.coach_conversation.pipeline import (
    ConversationMessage,
    ConversationTurn,
    TurnDependencies,
    open_conversation_turn,
)
from shared.composition.models import model_parts
from shared.composition.turns import TurnEntry, claim_margin_seconds, turn_entry
from shared.http.routes import ConversationStreamPath
from shared.http.stream_request import StreamRequest
from shared.settings import ConversationTurnSettings
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from shared.store.s3_images import S3ImageSource


def conversation_dependencies(settings: ConversationTurnSettings) -> TurnDependencies:
    table = settings.table_name
    return TurnDependencies(
        **model_parts(settings),
        conversations=DynamoConversationRepository(table_name=table),
        coaches=DynamoCoachRepository(table_name=table),
        images=S3ImageSource(settings.uploads_bucket),
        memories=DynamoMemoryRepository(table_name=table),
        workouts=DynamoWorkoutRepository(table_name=table),
        # a turn stores its reply at the latest this long after its deadline (the time budget checks it)
        claim_margin_seconds=claim_margin_seconds(settings),
    )


def conversation_message(request: StreamRequest[ConversationStreamPath]) -> ConversationMessage:
    body = request.body
    return ConversationMessage(
        user_id=request.user.user_id,
        coach_id=request.path.coach_id,
        conversation_id=request.path.conversation_id,
        text=body.user_response,
        timestamp=body.message_timestamp.isoformat(),
        client_message_id=body.client_message_id,
        image_keys=tuple(body.image_s3_keys),
    )


def conversation_turns(settings: ConversationTurnSettings) -> TurnEntry[ConversationMessage, ConversationTurn]:
    return turn_entry(
        settings, conversation_message, partial(open_conversation_turn, conversation_dependencies(settings))
    )
