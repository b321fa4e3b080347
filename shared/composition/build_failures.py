"""The composition root of `mark-coach-build-failed`: Lambda's record of a coach build that failed every
attempt, in; the session marked failed and the failure counted, out.

Lambda invokes this function itself, asynchronously, as the build function's on-failure destination
(`functions/catalog.py` `AsyncInvokeConfig`), with the invocation record as the event
(`shared.jobs.invocation_record`). A record that is not a failed build job is logged (which fields, never
their values), counted and dropped: a retry would read it the same way. Any other failure (the table
unreachable) raises, so Lambda retries this invocation in turn, and after its last attempt sends the record
to this function's own dead-letter queue, where an alarm sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from shared.coach_creator.build_job import BuildCoachJob
from shared.coach_creator.coach_builder import BuildFailureDependencies, mark_build_failed
from shared.jobs.invocation_record import InvocationRecord
from shared.observability import lambda_entry, log_keys, logger, observe
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository

INVALID_METRIC = "CoachBuildFailureInvalidRecords"
Handler = Callable[[Any, Any], dict[str, Any]]


def build_failure_dependencies(table_name: str) -> BuildFailureDependencies:
    return BuildFailureDependencies(sessions=DynamoCreatorSessionRepository(table_name=table_name), observe=observe)


@dataclass(frozen=True)
class BuildFailureWorker:
    """`process` is the handler without the Powertools decorators: tests call it with fakes."""

    compose: Callable[[], BuildFailureDependencies]

    def __post_init__(self) -> None:
        object.__setattr__(self, "compose", cache(self.compose))

    def process(self, event: Any, deps: BuildFailureDependencies | None = None) -> dict[str, Any]:
        deps = deps or self.compose()
        try:
            record = InvocationRecord.model_validate(event)
            job = BuildCoachJob.model_validate(record.request_payload) if record.failed else None
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) or "event" for e in exc.errors()})
            logger.error("not a failed build job's invocation record; dropped", extra={"fields": fields})
            deps.observe(INVALID_METRIC, 1)
            return {"statusCode": 400, "error": "invalid invocation record", "fields": fields}
        context = record.request_context
        if job is None:  # a success record: this function is not a success destination
            logger.warning("a record without a failure; nothing to mark", extra={"condition": context.condition})
            return {"statusCode": 200, "marked": False}
        keys = {**job.log_keys(), "failed_request_id": context.request_id}
        log_keys(**keys)
        try:
            logger.warning(
                "coach build gave up",
                extra={
                    "function": record.function_name,
                    "condition": context.condition,
                    "attempts": context.approximate_invoke_count,
                    "error_type": record.error_type,
                },
            )
            marked = mark_build_failed(job, deps)
        finally:
            logger.thread_safe_remove_keys(list(keys))
        return {"statusCode": 200, "marked": marked}

    def handler(self) -> Handler:
        @lambda_entry
        def handler(event: Any, context: Any) -> dict[str, Any]:
            return self.process(event)

        return handler


def build_failure_worker(table_name: str) -> BuildFailureWorker:
    return BuildFailureWorker(lambda: build_failure_dependencies(table_name))
