"""Job workers, made by one factory: a job is validated, run and logged the same way however it arrives.

Two deliveries, one per entry point:

- `handler()`: one job per invocation, invoked asynchronously (`InvocationType=Event`): the coach build.
- `stream_handler()`: a batch of the table's stream records (DynamoDB Streams through an event source
  mapping, `functions/catalog.py` `TableStreamSource`), each the new image of an outbox item whose `job`
  attribute is the job: the post-turn work.

Either way, a payload that is not a job is logged (which fields, never their values: they hold what the
user wrote), counted, and not retried, because a retry would fail the same way. Any other failure is
retried: an async job raises, so Lambda's async retries run it again; a stream record is reported as a
batch item failure (`batchItemFailures`), so the mapping retries it and, in the end, describes it in its
dead-letter queue. The jobs' idempotent writes make every retry safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from pydantic import ValidationError

from shared.jobs import JobMessage
from shared.observability import lambda_entry, log_keys, logger, observe

STREAM_JOB_ATTRIBUTE = "job"  # the outbox item's attribute that holds the job (a map, camelCase keys)


class Observing(Protocol):
    observe: Callable[[str, float], None]


Job = TypeVar("Job", bound=JobMessage)
Deps = TypeVar("Deps", bound=Observing)
Handler = Callable[[Any, Any], dict[str, Any]]


@dataclass(frozen=True)
class JobWorker(Generic[Job, Deps]):
    """`process` and `process_stream` are the handlers without the Powertools decorators: tests call them
    with fakes."""

    description: str  # "post-turn job": how logs and answers name it
    job: type[Job]
    run: Callable[[Job, Deps], dict[str, Any]]  # the job's result fields
    compose: Callable[[], Deps]  # the composition root, called once per container
    invalid_metric: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "compose", cache(self.compose))

    def process(self, event: Any, deps: Deps | None = None) -> dict[str, Any]:
        """One job: run it, or drop it (logged, counted) when it is not one; a failure of the job raises."""
        try:
            job = self.job.model_validate(event)
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) or "payload" for e in exc.errors()})
            logger.error(f"invalid {self.description}; dropped without retry", extra={"status": 400, "fields": fields})
            (deps.observe if deps else observe)(self.invalid_metric, 1)
            return {"statusCode": 400, "error": f"invalid {self.description}", "fields": fields}
        keys = job.log_keys()
        log_keys(**keys)
        try:
            result = self.run(job, deps or self.compose())
            logger.info(f"{self.description} done", extra=result)
        finally:
            logger.thread_safe_remove_keys(list(keys))  # a batch's next job must not carry this one's ids
        return {"statusCode": 200, **result}

    def process_stream(self, event: Any, deps: Deps | None = None) -> dict[str, Any]:
        """A batch of stream records, each record's job processed as `process` does one; the records whose
        job raised come back in `batchItemFailures` (by sequence number) for the mapping to retry."""

        def record_handler(record: DynamoDBRecord) -> dict[str, Any]:
            sequence = record.dynamodb.sequence_number if record.dynamodb else None
            log_keys(sequence_number=sequence)
            try:
                return self.process(stream_job(record), deps)
            except Exception:
                logger.exception(f"{self.description} failed; the event source mapping retries it")
                raise
            finally:
                logger.remove_keys(["sequence_number"])

        # A batch whose every record failed is still a partial response: the mapping retries what it names.
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor))

    def handler(self) -> Handler:
        """The entry point of a function invoked asynchronously, one job per invocation."""
        return _entry(self.process)

    def stream_handler(self) -> Handler:
        """The entry point of a function the table's stream invokes, a batch of records per invocation."""
        return _entry(self.process_stream)


def stream_job(record: DynamoDBRecord) -> Any:
    """The job an outbox item carries: its new image's `job` attribute as plain values (None if absent)."""
    image = record.dynamodb.new_image if record.dynamodb else None
    return (image or {}).get(STREAM_JOB_ATTRIBUTE)


def _entry(process: Callable[[Any], dict[str, Any]]) -> Handler:
    @lambda_entry
    def handler(event: Any, context: Any) -> dict[str, Any]:
        return process(event)

    return handler
