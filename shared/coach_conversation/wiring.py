"""Composition for the conversation functions: real adapters, created once per container."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from shared.coach_conversation.pipeline import ConversationTurn, TurnDependencies
from shared.errors import NotFound
from shared.http.event import HttpRequest
from shared.http.routes import Router
from shared.http.stream_request import open_stream_request
from shared.jobs.lambda_async import LambdaAsyncJobQueue
from shared.models import get_model_port, get_model_settings
from shared.observability import logger, observe
from shared.settings import ConversationTurnSettings, StreamSettings, settings
from shared.store.coaches import DynamoCoachRepository
from shared.store.conversations import DynamoConversationRepository
from shared.store.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from shared.store.rate_limit import RateLimiter
from shared.store.uploads import S3ImageSource


@cache
def turn_dependencies() -> TurnDependencies:
    return TurnDependencies(
        model=get_model_port(),
        model_settings=get_model_settings(),
        conversations=DynamoConversationRepository(),
        memories=DynamoMemoryRepository(),
        workouts=DynamoWorkoutRepository(),
        post_turn=LambdaAsyncJobQueue(settings(ConversationTurnSettings).post_turn_function_name),
        observe=observe,
    )


@cache
def rate_limiter() -> RateLimiter:
    return RateLimiter()


@cache
def _coaches() -> DynamoCoachRepository:
    return DynamoCoachRepository()


@cache
def _images() -> S3ImageSource:
    return S3ImageSource()


def stream_deadline(context: Any) -> float:
    """The turn's own time budget, always ending a margin before Lambda would kill the function."""
    stream = settings(StreamSettings)
    budget = stream.stream_time_budget_seconds
    remaining = context.get_remaining_time_in_millis() / 1000 - stream.stream_deadline_margin_seconds
    return time.monotonic() + max(1.0, min(budget, remaining))


def open_conversation_turn(request: HttpRequest, context: Any, router: Router) -> ConversationTurn:
    """Every pre-stream step in the contract's order; each failure raises its `CoachError`."""
    stream_request = open_stream_request(request, router)
    user_id = stream_request.user.user_id
    logger.append_keys(user_id=user_id)
    rate_limiter().hit(user_id)
    path = stream_request.path
    deps = turn_dependencies()
    conversation = deps.conversations.get_conversation(user_id, path.coach_id, path.conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    coach = _coaches().get_coach(user_id, path.coach_id)
    if coach is None:
        raise NotFound("coach not found")
    keys = stream_request.body.image_s3_keys
    images = _images().load(user_id, keys) if keys else ()
    return ConversationTurn(
        stream_request, conversation, coach, images, deps, stream_deadline(context), context.aws_request_id
    )
