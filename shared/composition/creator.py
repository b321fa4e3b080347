"""The coach creator answer's composition root (streaming function and fallback alike)."""

from __future__ import annotations

from shared.coach_creator.pipeline import CreatorAnswer, CreatorDependencies, CreatorTurn, open_creator_turn
from shared.composition.turns import TurnEntry
from shared.http.routes import CreatorSessionStreamPath
from shared.http.stream_request import StreamRequest
from shared.jobs.lambda_async import LambdaAsyncJobQueue
from shared.models import ModelSettings, create_model_port
from shared.observability import observe
from shared.settings import CreatorTurnSettings
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.dynamodb.rate_limit import DynamoRateLimiter


def creator_dependencies(settings: CreatorTurnSettings) -> CreatorDependencies:
    model_settings = ModelSettings.from_section(settings)
    return CreatorDependencies(
        model=create_model_port(model_settings),
        model_settings=model_settings,
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
        coach_builder=LambdaAsyncJobQueue(settings.build_coach_function_name),
        observe=observe,
    )


def creator_answer(request: StreamRequest[CreatorSessionStreamPath]) -> CreatorAnswer:
    return CreatorAnswer(
        user_id=request.user.user_id, session_id=request.path.session_id, text=request.body.user_response
    )


def creator_turns(settings: CreatorTurnSettings) -> TurnEntry[CreatorAnswer, CreatorTurn]:
    deps = creator_dependencies(settings)
    return TurnEntry(
        read=creator_answer,
        open=lambda answer, deadline, request_id: open_creator_turn(deps, answer, deadline, request_id),
        limiter=DynamoRateLimiter(settings.rate_limit_per_minute, table_name=settings.table_name),
        stream=settings,
    )
