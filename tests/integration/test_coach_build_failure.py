"""A coach build that fails every attempt, through the local stack: the session ends up `failed`, and its GET
says so, as in AWS.

The interview hands the build to `build-coach-from-session` as an `Event` invocation. The local Invoke API runs
it with the template's `EventInvokeConfig` (its retries), then sends Lambda's invocation record, with the
builder's role, to the template's on-failure destination, `mark-coach-build-failed`, which marks the session.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest

from functions.catalog import BUILD_COACH_FROM_SESSION, MARK_COACH_BUILD_FAILED, STREAM_COACH_CREATOR_SESSION
from local.lambda_api import AsyncResult, invocation_record
from local.stack import TABLE_NAME, LocalStack
from shared.coach_creator.build_job import BuildCoachJob
from shared.jobs.invocation_record import InvocationRecord
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.records import QuestionAnswer
from tests.fixtures.local_faults import eventually, refusing_model

pytestmark = pytest.mark.integration


@pytest.fixture
def breaking_model(stack: LocalStack) -> Iterator[str]:
    """The model refuses any request that carries the returned marker (every attempt), the rest as before."""
    with refusing_model(stack) as refusal:
        yield refusal.marker


def finished_interview(stack: LocalStack, user_id: str, answer: str) -> str:
    """A session whose last answer is recorded (complete, its coach `generating`), as the interview leaves it."""
    sessions = DynamoCreatorSessionRepository(stack.dynamodb.resource().Table(TABLE_NAME))
    session = sessions.create_session(user_id, "goals")
    claimed = sessions.claim(session, "req-final", int(time.time()) + 60)
    qa = QuestionAnswer(
        question_id="goals", question="What are your goals?", answer=answer, ai_response="Great.", answered_at="now"
    )
    done = sessions.commit(claimed, qa, None, "BEGINNER", is_complete=True)
    assert (done.is_complete, done.coach_config_status) == (True, "generating")
    return session.session_id


def invoke_as(stack: LocalStack, caller: str) -> Any:
    """The Lambda client a function uses (locally its name is its access key, so the IAM gate judges its role)."""
    assert stack.lambda_api is not None
    return boto3.client(
        "lambda",
        endpoint_url=stack.lambda_api.url,
        region_name="us-east-1",
        aws_access_key_id=caller,
        aws_secret_access_key="local",
    )


def test_a_build_that_fails_every_attempt_leaves_the_session_failed_and_the_get_shows_it(stack, breaking_model):
    assert stack.lambda_api is not None
    user_id = f"build-fails-{uuid.uuid4().hex[:8]}"
    session_id = finished_interview(stack, user_id, f"I want to squat 140 kg. {breaking_model}")
    builder = stack.functions[BUILD_COACH_FROM_SESSION.name].spec.name
    marker = stack.functions[MARK_COACH_BUILD_FAILED.name].spec.name
    creator = stack.functions[STREAM_COACH_CREATOR_SESSION.name].spec.name
    job = BuildCoachJob(user_id=user_id, session_id=session_id).model_dump(by_alias=True)

    # The hand-off, exactly as the interview makes it: an Event invocation with the creator's role.
    response = invoke_as(stack, creator).invoke(
        FunctionName=builder, InvocationType="Event", Payload=json.dumps(job).encode()
    )
    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["RequestId"]

    def outcome(name: str, check: Callable[[AsyncResult], bool]) -> AsyncResult | None:
        return next((r for r in list(stack.lambda_api.async_results) if r.function_name == name and check(r)), None)

    build = eventually(lambda: outcome(builder, lambda r: r.request_id == request_id), 60, "the build's last attempt")
    config = {c.function_name: c for c in stack.async_invoke_configs()}[builder]
    assert (build.succeeded, build.attempts, build.condition) == (False, 1 + config.retry_attempts, "RetriesExhausted")
    assert build.delivered_to == config.on_failure and config.on_failure.endswith(f":function:{marker}")
    refused = [r for r in stack.bedrock.requests if breaking_model in r.last_user_text]
    assert len(refused) >= build.attempts  # every attempt reached the model and failed there

    marked = eventually(
        lambda: outcome(marker, lambda r: json.loads(r.payload or b"{}").get("marked") is True), 20, "the mark"
    )
    assert marked.succeeded

    token = stack.issuer.mint(user_id)
    shown = httpx.get(
        f"{stack.outputs()['apiUrl']}/users/{user_id}/coach-creator-sessions/{session_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["isComplete"], body["coachConfigStatus"]) == (True, "failed")
    assert "coachId" not in body  # no coach was built

    # Lambda delivers at least once: the same record again marks nothing, and the session stays failed.
    record = invocation_record(
        request_id=request_id,
        function_arn=stack.lambda_api.function_arn(builder),
        condition="RetriesExhausted",
        attempts=build.attempts,
        event=job,
        last=None,
        at=time.time(),
    )
    InvocationRecord.model_validate(record)
    again = invoke_as(stack, "operator").invoke(FunctionName=marker, Payload=json.dumps(record).encode())
    assert "FunctionError" not in again
    assert json.loads(again["Payload"].read()) == {"statusCode": 200, "marked": False}
    assert DynamoCreatorSessionRepository(stack.dynamodb.resource().Table(TABLE_NAME)).get_session(
        user_id, session_id
    ).coach_config_status == ("failed")

    # Lambda sent the record with the builder's role, which the template lets invoke the marker, and nothing else.
    calls = stack.recorded_calls()
    sent = [c for c in calls if c.caller == builder and c.action == "lambda:InvokeFunction"]
    assert sent and all(c.verdict == "allowed" and c.resource.endswith(f":function:{marker}") for c in sent)
    marks = [c for c in calls if c.caller == marker and c.action == "dynamodb:UpdateItem"]
    assert marks and all(c.verdict == "allowed" for c in marks)
