"""A coach build that fails every attempt: Lambda's invocation record, the function that marks the session
failed, the catalog's rules for async invocations, and the local Invoke API delivering the record as Lambda
does (retries from the template's EventInvokeConfig, then the on-failure destination)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from functions.catalog import (
    BUILD_COACH_FROM_SESSION,
    FUNCTIONS,
    MARK_COACH_BUILD_FAILED,
    AsyncInvokeConfig,
    FunctionDefinition,
)
from infra.catalog_rules import CatalogError, async_invoke_config, check
from local.lambda_api import AsyncInvokeConfig as LocalAsyncInvokeConfig
from local.lambda_api import InvokeConfigError, LambdaApiServer
from shared.coach_creator.coach_builder import BUILD_FAILED_METRIC, BuildFailureDependencies
from shared.composition.build_failures import INVALID_METRIC, BuildFailureWorker
from shared.jobs.invocation_record import InvocationRecord
from tests.fakes import InMemoryCreatorSessionRepository
from tests.fakes.metrics import RecordedMetrics
from tests.fixtures.aws import atomic_moto_server, loopback_client
from tests.fixtures.lambda_api import FakeFunction, crash, echo, lambda_api_servers
from tests.unit.test_creator_store_contract import step

USER = "user-1"
BUILDER = "coach-stream-build-coach-from-session"
MARKER = "coach-stream-mark-coach-build-failed"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"

# The example AWS documents for a record of an asynchronous invocation that failed every attempt.
AWS_EXAMPLE = {
    "version": "1.0",
    "timestamp": "2019-11-14T18:16:05.568Z",
    "requestContext": {
        "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    },
    "requestPayload": {"ORDER_IDS": ["9e07af03-ce31-4ff3-xmpl-36dce652cb4f"]},
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "responsePayload": {"errorMessage": "RequestId: e4b46cbf Process exited before completing request"},
}


def failure_record(session_id: str, condition: str = "RetriesExhausted", request_id: str = "req-1") -> dict[str, Any]:
    return {
        **AWS_EXAMPLE,
        "requestContext": {**AWS_EXAMPLE["requestContext"], "requestId": request_id, "condition": condition},
        "requestPayload": {"kind": "build-coach-from-session", "userId": USER, "sessionId": session_id},
        "responsePayload": {"errorType": "ModelUnavailable", "errorMessage": "the model is unavailable"},
    }


# --- the record ----------------------------------------------------------------------------------


def test_the_record_aws_documents_is_read_as_a_failure_of_the_named_function() -> None:
    record = InvocationRecord.model_validate(AWS_EXAMPLE)
    assert record.failed
    assert record.function_name == "my-function"
    assert record.request_context.approximate_invoke_count == 3
    assert record.response_context is not None and record.response_context.function_error == "Unhandled"
    assert record.error_type is None  # the message is never read: it may quote the user
    expired = {**AWS_EXAMPLE, "requestContext": {**AWS_EXAMPLE["requestContext"], "condition": "EventAgeExceeded"}}
    del expired["responseContext"], expired["responsePayload"]
    assert InvocationRecord.model_validate(expired).failed
    success = {**AWS_EXAMPLE, "requestContext": {**AWS_EXAMPLE["requestContext"], "condition": "Success"}}
    assert not InvocationRecord.model_validate(success).failed


# --- marking the session -------------------------------------------------------------------------


@pytest.fixture
def sessions() -> InMemoryCreatorSessionRepository:
    return InMemoryCreatorSessionRepository()


@pytest.fixture
def metrics() -> RecordedMetrics:
    return RecordedMetrics()


@pytest.fixture
def worker(sessions: InMemoryCreatorSessionRepository, metrics: RecordedMetrics) -> BuildFailureWorker:
    return BuildFailureWorker(lambda: BuildFailureDependencies(sessions=sessions, observe=metrics))


def generating(sessions: InMemoryCreatorSessionRepository) -> str:
    """A session whose last answer was recorded: complete, its coach being built."""
    session = sessions.create_session(USER, "goals")
    claimed = sessions.claim(session, "req", int(time.time()) + 60)
    sessions.commit(claimed, step(), None, "BEGINNER", is_complete=True)
    return session.session_id


def status(sessions: InMemoryCreatorSessionRepository, session_id: str) -> tuple[str, str | None]:
    current = sessions.get_session(USER, session_id)
    assert current is not None
    return current.coach_config_status, current.coach_id


def test_a_build_that_failed_every_attempt_marks_its_session_failed_once(worker, sessions, metrics) -> None:
    session_id = generating(sessions)
    assert status(sessions, session_id) == ("generating", None)

    assert worker.process(failure_record(session_id)) == {"statusCode": 200, "marked": True}
    assert status(sessions, session_id) == ("failed", None)
    assert metrics.values(BUILD_FAILED_METRIC) == [1]

    # Lambda delivers the record again (at-least-once): nothing changes, nothing is counted twice.
    assert worker.process(failure_record(session_id)) == {"statusCode": 200, "marked": False}
    assert worker.process(failure_record(session_id, "EventAgeExceeded", "req-2"))["marked"] is False
    assert status(sessions, session_id) == ("failed", None)
    assert metrics.values(BUILD_FAILED_METRIC) == [1]


def test_a_session_whose_coach_was_built_is_never_marked_failed(worker, sessions, metrics) -> None:
    session_id = generating(sessions)
    sessions.attach_coach(USER, session_id, f"coach-{session_id}")
    assert worker.process(failure_record(session_id))["marked"] is False
    assert status(sessions, session_id) == ("ready", f"coach-{session_id}")
    assert worker.process(failure_record("gone"))["marked"] is False
    assert sessions.get_session(USER, "gone") is None
    assert metrics.values(BUILD_FAILED_METRIC) == []


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ({"hello": "world"}, ["requestContext", "timestamp", "version"]),
        ({**AWS_EXAMPLE}, ["sessionId", "userId"]),  # a record, but not of a build job
    ],
)
def test_a_record_that_is_not_a_failed_build_is_dropped_and_counted(worker, sessions, metrics, event, fields) -> None:
    session_id = generating(sessions)
    answer = worker.process(event)
    assert (answer["statusCode"], answer["fields"]) == (400, fields)
    assert metrics.values(INVALID_METRIC) == [1]
    assert status(sessions, session_id) == ("generating", None)


def test_a_success_record_marks_nothing(worker, sessions, metrics) -> None:
    session_id = generating(sessions)
    assert worker.process(failure_record(session_id, "Success")) == {"statusCode": 200, "marked": False}
    assert status(sessions, session_id) == ("generating", None)
    assert metrics.observed == []


def test_a_table_that_fails_raises_so_lambda_retries_the_mark(metrics) -> None:
    class Down(InMemoryCreatorSessionRepository):
        def mark_coach_failed(self, user_id: str, session_id: str) -> bool:
            raise ConnectionError("the table is unreachable")

    down = BuildFailureWorker(lambda: BuildFailureDependencies(sessions=Down(), observe=metrics))
    with pytest.raises(ConnectionError):
        down.process(failure_record("s-1"))
    assert metrics.observed == []


# --- the catalog ---------------------------------------------------------------------------------


def test_the_builder_hands_its_failures_to_the_marker_whose_own_failures_are_kept() -> None:
    builder = BUILD_COACH_FROM_SESSION.async_invoke
    assert builder is not None and builder.on_failure_function == MARK_COACH_BUILD_FAILED.name
    assert builder.max_event_age_seconds >= builder.worst_case_seconds(BUILD_COACH_FROM_SESSION.timeout_seconds)
    marker = async_invoke_config(MARK_COACH_BUILD_FAILED, FUNCTIONS)
    assert marker is not None and marker.on_failure_function is None  # its own dead-letter queue
    # Every function invoked asynchronously has a configuration, hence a destination for its failures.
    targets = {t for d in FUNCTIONS for t in d.invokes} | {MARK_COACH_BUILD_FAILED.name}
    assert all(async_invoke_config(d, FUNCTIONS) is not None for d in FUNCTIONS if d.name in targets)


def _with_builder(config: AsyncInvokeConfig) -> tuple[FunctionDefinition, ...]:
    return tuple(replace(d, async_invoke=config) if d.name == BUILD_COACH_FROM_SESSION.name else d for d in FUNCTIONS)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            AsyncInvokeConfig(max_event_age_seconds=600, on_failure_function="mark-coach-build-failed"),
            "cuts its retries",
        ),
        (AsyncInvokeConfig(retry_attempts=3), "retry_attempts must be 0 to 2"),
        (AsyncInvokeConfig(max_event_age_seconds=30), "max_event_age_seconds must be 60 to 21600"),
        (AsyncInvokeConfig(on_failure_function="build-coach-from-session"), "its own on-failure destination"),
        (AsyncInvokeConfig(on_failure_function="nobody"), "not in the catalog"),
        (AsyncInvokeConfig(on_failure_function="stream-coach-conversation"), "must be a buffered function"),
    ],
)
def test_an_async_configuration_lambda_would_refuse_or_that_drops_retries_fails_the_synth(config, message) -> None:
    with pytest.raises(CatalogError, match=message):
        check(_with_builder(config))


# --- the local Invoke API: the template's retries, then the record to the destination --------------


@pytest.fixture
def make_server() -> Iterator[Callable[..., LambdaApiServer]]:
    with lambda_api_servers(account="123456789012") as make:
        yield make


def test_after_the_last_attempt_the_record_goes_to_the_destination_function(make_server) -> None:
    builder, marker = FakeFunction(crash), FakeFunction(echo)
    config = LocalAsyncInvokeConfig(BUILDER, retry_attempts=1, max_event_age_seconds=3600, on_failure=ARN + MARKER)
    server = make_server({BUILDER: builder, MARKER: marker}, async_configs={BUILDER: config})

    response = loopback_client("lambda", server.url, region="us-east-1", read_timeout=10).invoke(
        FunctionName=BUILDER, InvocationType="Event", Payload=b'{"sessionId": "s-1"}'
    )

    assert server.wait_for_async_results(2, timeout=10)  # the build's outcome, then the marker's
    results = {result.function_name: result for result in server.async_results}
    build, mark = results[BUILDER], results[MARKER]
    assert (build.function_name, build.attempts, build.succeeded) == (BUILDER, 2, False)  # 1 + retry_attempts
    assert (build.condition, build.delivered_to) == ("RetriesExhausted", ARN + MARKER)
    assert (mark.function_name, mark.succeeded) == (MARKER, True)
    (delivered,) = marker.events
    record = InvocationRecord.model_validate(delivered)
    assert record.request_context.request_id == response["ResponseMetadata"]["RequestId"]
    assert record.request_context.function_arn == f"{ARN}{BUILDER}:$LATEST"
    assert (record.request_context.condition, record.request_context.approximate_invoke_count) == (
        "RetriesExhausted",
        2,
    )
    assert record.request_payload == {"sessionId": "s-1"}
    assert record.response_context is not None and record.response_context.function_error == "Unhandled"
    assert record.error_type == "RuntimeError"
    assert len(builder.events) == 2


def test_an_event_past_its_maximum_age_is_not_run_and_its_record_says_so(make_server) -> None:
    builder, marker = FakeFunction(echo), FakeFunction(echo)
    config = LocalAsyncInvokeConfig(BUILDER, max_event_age_seconds=60, on_failure=ARN + MARKER)
    server = make_server({BUILDER: builder, MARKER: marker}, async_configs={BUILDER: config})

    server.run_async("req-old", BUILDER, {"sessionId": "s-2"}, received=time.time() - 61)

    assert builder.events == []
    assert server.wait_for_async_results(2, timeout=10)
    (delivered,) = marker.events
    assert delivered["requestContext"]["condition"] == "EventAgeExceeded"
    assert delivered["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in delivered


def test_without_a_configuration_lambda_retries_twice_and_discards(make_server) -> None:
    builder = FakeFunction(crash)
    server = make_server({BUILDER: builder})
    server.run_async("req-1", BUILDER, {})
    (result,) = server.async_results
    assert (result.attempts, result.succeeded, result.delivered_to) == (3, False, None)


def test_a_queue_destination_gets_the_record_as_its_message_body(make_server) -> None:
    with atomic_moto_server() as endpoint:
        sqs = loopback_client("sqs", endpoint, region="us-east-1", read_timeout=10)
        url = sqs.create_queue(QueueName=f"{MARKER}-dlq")["QueueUrl"]
        config = LocalAsyncInvokeConfig(
            MARKER, retry_attempts=0, on_failure=f"arn:aws:sqs:us-east-1:123456789012:{MARKER}-dlq"
        )
        server = make_server({MARKER: FakeFunction(crash)}, async_configs={MARKER: config}, sqs_endpoint=endpoint)
        server.run_async("req-3", MARKER, {"kind": "anything"})
        (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    record = InvocationRecord.model_validate(json.loads(message["Body"]))
    assert (record.request_context.request_id, record.request_payload) == ("req-3", {"kind": "anything"})
    assert record.request_context.approximate_invoke_count == 1


def test_an_event_invoke_config_is_read_from_the_template_or_refused() -> None:
    def resolve(value: Any) -> Any:
        return (
            {"Ref": BUILDER, "GetAtt": ARN + MARKER}.get(next(iter(value)), value) if isinstance(value, dict) else value
        )

    properties = {
        "FunctionName": {"Ref": "BuildCoachFromSessionFunction"},
        "Qualifier": "$LATEST",
        "MaximumRetryAttempts": 1,
        "MaximumEventAgeInSeconds": 900,
        "DestinationConfig": {"OnFailure": {"Destination": {"GetAtt": ["MarkCoachBuildFailedFunction", "Arn"]}}},
    }
    config = LocalAsyncInvokeConfig.from_template("Config", properties, resolve)
    assert config == LocalAsyncInvokeConfig(BUILDER, 1, 900, ARN + MARKER)
    with pytest.raises(InvokeConfigError, match="on-success"):
        LocalAsyncInvokeConfig.from_template(
            "Config", {**properties, "DestinationConfig": {"OnSuccess": {"Destination": "x"}}}, resolve
        )
    with pytest.raises(InvokeConfigError, match="only \\$LATEST"):
        LocalAsyncInvokeConfig.from_template("Config", {**properties, "Qualifier": "live"}, resolve)
