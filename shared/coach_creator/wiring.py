"""Composition for the coach creator functions: real adapters, created once per container."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.coach_conversation.wiring import rate_limiter, stream_deadline
from shared.coach_creator.pipeline import CreatorDependencies, CreatorTurn
from shared.errors import NotFound
from shared.http.event import HttpRequest
from shared.http.routes import Router
from shared.http.stream_request import open_stream_request
from shared.jobs.lambda_async import LambdaAsyncJobQueue
from shared.models import get_model_port, get_model_settings
from shared.observability import logger, observe
from shared.settings import CreatorTurnSettings, settings
from shared.store.creator_sessions import DynamoCreatorSessionRepository


@cache
def creator_dependencies() -> CreatorDependencies:
    return CreatorDependencies(
        model=get_model_port(),
        model_settings=get_model_settings(),
        sessions=DynamoCreatorSessionRepository(),
        coach_builder=LambdaAsyncJobQueue(settings(CreatorTurnSettings).build_coach_function_name),
        observe=observe,
    )


def open_creator_turn(request: HttpRequest, context: Any, router: Router) -> CreatorTurn:
    """Every pre-stream step in the contract's order; each failure raises its `CoachError`."""
    stream_request = open_stream_request(request, router)
    user_id = stream_request.user.user_id
    logger.append_keys(user_id=user_id)
    rate_limiter().hit(user_id)
    deps = creator_dependencies()
    session = deps.sessions.get_session(user_id, stream_request.path.session_id)
    if session is None:
        raise NotFound("coach creator session not found")
    return CreatorTurn(stream_request, session, deps, stream_deadline(context), context.aws_request_id)
