"""The coach creator answer's composition root (streaming function and fallback alike)."""

from __future__ import annotations

from functools import partial

from shared.coach_creator.pipeline import (
    CreatorAnswer,
    CreatorDependencies,
    CreatorTurn,
    ReplayedAnswer,
    open_creator_turn,
)
from shared.composition.models import model_parts
from shared.composition.turns import TurnEntry, claim_margin_seconds, turn_entry
from shared.http.routes import CreatorSessionStreamPath
from shared.http.stream_request import StreamRequest
from shared.jobs.lambda_async import LambdaAsyncJobQueue
from shared.settings import CreatorTurnSettings
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository


def creator_dependencies(settings: CreatorTurnSettings) -> CreatorDependencies:
    return CreatorDependencies(
        **model_parts(settings),
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
        coach_builder=LambdaAsyncJobQueue(settings.build_coach_function_name),
        # a turn stores its step at the latest this long after its deadline (the time budget checks it)
        claim_margin_seconds=claim_margin_seconds(settings),
    )


def creator_answer(request: StreamRequest[CreatorSessionStreamPath]) -> CreatorAnswer:
    return CreatorAnswer(
        user_id=request.user.user_id,
        session_id=request.path.session_id,
        text=request.body.user_response,
        client_message_id=request.body.client_message_id,
    )


def creator_turns(settings: CreatorTurnSettings) -> TurnEntry[CreatorAnswer, CreatorTurn | ReplayedAnswer]:
    return turn_entry(settings, creator_answer, partial(open_creator_turn, creator_dependencies(settings)))
