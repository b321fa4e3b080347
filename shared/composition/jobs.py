"""The composition roots of the two job workers: post-turn work (from the table's stream) and the coach build
(invoked asynchronously). One factory, `JobWorker`, serves both deliveries."""

from __future__ import annotations

from functools import partial
from typing import Any

from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.post_turn_work import PostTurnDependencies, run_post_turn
from shared.coach_creator.build_job import BuildCoachJob
from shared.coach_creator.coach_builder import CoachBuilderDependencies, build_coach
from shared.composition.models import model_parts
from shared.composition.workers import JobWorker
from shared.settings import ModelWorkerSettings
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository


def post_turn_dependencies(settings: ModelWorkerSettings) -> PostTurnDependencies:
    return PostTurnDependencies(
        **model_parts(settings),
        conversations=DynamoConversationRepository(table_name=settings.table_name),
        memories=DynamoMemoryRepository(table_name=settings.table_name),
        workouts=DynamoWorkoutRepository(table_name=settings.table_name),
    )


def coach_builder_dependencies(settings: ModelWorkerSettings) -> CoachBuilderDependencies:
    return CoachBuilderDependencies(
        **model_parts(settings),
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
        coaches=DynamoCoachRepository(table_name=settings.table_name),
    )


def _run_post_turn(job: PostTurnJob, deps: PostTurnDependencies) -> dict[str, Any]:
    return run_post_turn(job, deps).api()


def _build_coach(job: BuildCoachJob, deps: CoachBuilderDependencies) -> dict[str, Any]:
    coach = build_coach(job, deps)
    return {"coachId": coach.coach_id if coach else None}


def post_turn_worker(settings: ModelWorkerSettings) -> JobWorker[PostTurnJob, PostTurnDependencies]:
    compose = partial(post_turn_dependencies, settings)
    return JobWorker("post-turn job", PostTurnJob, _run_post_turn, compose, "PostTurnInvalidJobs")


def coach_builder_worker(settings: ModelWorkerSettings) -> JobWorker[BuildCoachJob, CoachBuilderDependencies]:
    compose = partial(coach_builder_dependencies, settings)
    return JobWorker("build-coach job", BuildCoachJob, _build_coach, compose, "CoachBuildInvalidJobs")
