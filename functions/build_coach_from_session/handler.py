"""build-coach-from-session: the coach an interview built, invoked asynchronously (InvocationType Event).

Thin on purpose: parse the job, run it. A payload that is not a job is logged and dropped (returning
normally, because a retry would fail the same way); any other failure raises, so Lambda's async
retries run the job again, which the builder's idempotent writes make safe.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from functions.catalog import BUILD_COACH_FROM_SESSION
from shared.coach_creator.coach_builder import BuildCoachJob, CoachBuilderDependencies, build_coach
from shared.models import get_model_port, get_model_settings
from shared.observability import lambda_entry, logger, observe
from shared.settings import load_settings
from shared.store.coaches import DynamoCoachRepository
from shared.store.creator_sessions import DynamoCreatorSessionRepository

SETTINGS = load_settings(BUILD_COACH_FROM_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""


@cache
def builder_dependencies() -> CoachBuilderDependencies:
    """Real adapters, created on the first valid job and kept for the container's life."""
    return CoachBuilderDependencies(
        model=get_model_port(),
        model_settings=get_model_settings(),
        sessions=DynamoCreatorSessionRepository(),
        coaches=DynamoCoachRepository(),
        observe=observe,
    )


def process(event: Any, deps: CoachBuilderDependencies | None = None) -> dict[str, Any]:
    """The handler's whole logic, without the Powertools decorators (tests call it directly)."""
    try:
        job = BuildCoachJob.model_validate(event)
    except ValidationError as exc:
        fields = sorted({".".join(map(str, e["loc"])) or "payload" for e in exc.errors()})
        logger.error("invalid build-coach job; dropped without retry", extra={"status": 400, "fields": fields})
        (deps.observe if deps else observe)("CoachBuildInvalidJobs", 1)
        return {"statusCode": 400, "error": "invalid build-coach job", "fields": fields}
    logger.append_keys(user_id=job.user_id, session_id=job.session_id)
    coach = build_coach(job, deps or builder_dependencies())
    logger.info("build-coach job done", extra={"coachId": coach.coach_id if coach else None})
    return {"statusCode": 200, "coachId": coach.coach_id if coach else None}


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    return process(event)
