"""coach-conversation-post-turn: the work after a reply, invoked asynchronously (InvocationType Event).

Thin on purpose: parse the job, run it. A payload that is not a job is logged and dropped (returning
normally, because a retry would fail the same way); any other failure raises, so Lambda's async
retries run the job again, which its idempotent writes make safe.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from functions.catalog import COACH_CONVERSATION_POST_TURN
from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.post_turn_work import PostTurnDependencies, run_post_turn
from shared.models import get_model_port, get_model_settings
from shared.observability import lambda_entry, logger, observe
from shared.settings import load_settings
from shared.store.conversations import DynamoConversationRepository
from shared.store.memories import DynamoMemoryRepository, DynamoWorkoutRepository

SETTINGS = load_settings(COACH_CONVERSATION_POST_TURN.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

JOB_KIND = "coach-conversation-post-turn"


@cache
def post_turn_dependencies() -> PostTurnDependencies:
    """Real adapters, created on the first valid job and kept for the container's life."""
    return PostTurnDependencies(
        model=get_model_port(),
        model_settings=get_model_settings(),
        conversations=DynamoConversationRepository(),
        memories=DynamoMemoryRepository(),
        workouts=DynamoWorkoutRepository(),
        observe=observe,
    )


def process(event: Any, deps: PostTurnDependencies | None = None) -> dict[str, Any]:
    """The handler's whole logic, without the Powertools decorators (tests call it directly)."""
    try:
        job = PostTurnJob.model_validate(event)
    except ValidationError as exc:
        return _reject(deps, sorted({".".join(map(str, e["loc"])) or "payload" for e in exc.errors()}))
    if job.kind != JOB_KIND:
        return _reject(deps, ["kind"])
    logger.append_keys(user_id=job.user_id, conversation_id=job.conversation_id)
    report = run_post_turn(job, deps or post_turn_dependencies())
    logger.info("post-turn job done", extra=report.api())
    return {"statusCode": 200, **report.api()}


def _reject(deps: PostTurnDependencies | None, fields: list[str]) -> dict[str, Any]:
    """Logs which fields were wrong, never their values (they hold what the user wrote)."""
    logger.error("invalid post-turn job; dropped without retry", extra={"status": 400, "fields": fields})
    (deps.observe if deps else observe)("PostTurnInvalidJobs", 1)
    return {"statusCode": 400, "error": "invalid post-turn job", "fields": fields}


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    return process(event)
