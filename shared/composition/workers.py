"""Job workers: the functions invoked asynchronously (`InvocationType=Event`), made by one factory.

A payload that is not a job is logged (which fields, never their values: they hold what the user
wrote) and dropped, returning normally, because a retry would fail the same way. Any other failure
raises, so Lambda's async retries run the job again, which the jobs' idempotent writes make safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from shared.jobs import JobMessage
from shared.observability import lambda_entry, logger, observe


class Observing(Protocol):
    observe: Callable[[str, float], None]


Job = TypeVar("Job", bound=JobMessage)
Deps = TypeVar("Deps", bound=Observing)


@dataclass(frozen=True)
class JobWorker(Generic[Job, Deps]):
    """`process` is the whole handler without the Powertools decorators: tests call it with fakes."""

    description: str  # "post-turn job": how logs and answers name it
    job: type[Job]
    run: Callable[[Job, Deps], dict[str, Any]]  # the job's result fields
    compose: Callable[[], Deps]  # the composition root, called once per container
    invalid_metric: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "compose", cache(self.compose))

    def process(self, event: Any, deps: Deps | None = None) -> dict[str, Any]:
        try:
            job = self.job.model_validate(event)
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) or "payload" for e in exc.errors()})
            logger.error(f"invalid {self.description}; dropped without retry", extra={"status": 400, "fields": fields})
            (deps.observe if deps else observe)(self.invalid_metric, 1)
            return {"statusCode": 400, "error": f"invalid {self.description}", "fields": fields}
        logger.append_keys(**job.log_keys())
        result = self.run(job, deps or self.compose())
        logger.info(f"{self.description} done", extra=result)
        return {"statusCode": 200, **result}

    def handler(self) -> Callable[[Any, Any], dict[str, Any]]:
        @lambda_entry
        def handler(event: Any, context: Any) -> dict[str, Any]:
            return self.process(event)

        return handler
