"""Post-turn work that ended in the dead-letter queue, redriven by the operator tool once the fault is fixed.

A job fails every attempt (the model refuses it), so the local event source mapping describes its batch in the
post-turn function's dead-letter queue (moto's SQS, as the template names it). The model is fixed; then
`python -m ops.redrive_post_turn`, pointed at the local stack by the standard `AWS_ENDPOINT_URL_*` variables,
reads the batch back from the stream, invokes the function with it and deletes the message: the work lands.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from functions.catalog import COACH_CONVERSATION_POST_TURN
from local.stack import TABLE_NAME, LocalStack
from ops import redrive_post_turn
from ops.stream_events import read_batch
from shared.coach_conversation.post_turn_work import workout_id_for
from shared.store.dynamodb.memories import DynamoWorkoutRepository
from tests.fixtures.local_faults import Refusal, eventually, refusing_model, write_post_turn_job

pytestmark = pytest.mark.integration


@pytest.fixture
def fault(stack: LocalStack) -> Iterator[Refusal]:
    with refusing_model(stack) as refusal:
        yield refusal


@pytest.fixture
def local_aws(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's AWS configuration, pointed at the local stack the standard way."""
    assert stack.lambda_api is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", stack.dynamodb.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", stack.dynamodb.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", stack.lambda_api.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "operator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_dead_lettered_job_is_redriven_after_the_fix_and_its_work_lands(stack, fault, local_aws):
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    workouts = DynamoWorkoutRepository(table)
    user = f"redrive-{uuid.uuid4().hex[:8]}"
    key, message_id = write_post_turn_job(table, user, f"I did 5x5 squats at 100kg today {fault.marker}")

    (poller,) = [p for p in stack.stream_pollers if p.mapping.function_name.endswith(COACH_CONVERSATION_POST_TURN.name)]
    sqs = stack.dynamodb.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=poller.mapping.on_failure_destination.rsplit(":", 1)[1])["QueueUrl"]
    streams = stack.dynamodb.client("dynamodbstreams")

    def ours() -> str | None:
        """The id of the dead letter naming our item; every message received is made visible again at once."""
        found = None
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            first = read_batch(streams, json.loads(message["Body"])["DDBStreamBatchInfo"])[0]
            if {k: v["S"] for k, v in first["dynamodb"]["Keys"].items()} == key:
                found = message["MessageId"]
        return found

    letter_id = eventually(ours, seconds=60, what="the dead letter")
    assert not workouts.recent_workouts(user, 10), "nothing was stored for the failed job"

    # A dry run reads and reports, and changes nothing.
    said: list[str] = []
    redrive_post_turn.main(["--dry-run"], say=said.append)
    (line,) = [s for s in said if letter_id in s]
    assert line.startswith("dry run") and "would invoke coach-stream-coach-conversation-post-turn with 1" in line
    assert not workouts.recent_workouts(user, 10)
    assert eventually(ours, seconds=5, what="the dead letter, kept") == letter_id

    # Redriven while the fault is still there: the work fails again and the message stays.
    said.clear()
    redrive_post_turn.main([], say=said.append)
    (line,) = [s for s in said if letter_id in s]
    assert line.startswith("kept") and "failed again" in line, line
    assert eventually(ours, seconds=5, what="the dead letter, kept") == letter_id

    fault.lifted = True
    said.clear()
    redrive_post_turn.main([], say=said.append)
    (line,) = [s for s in said if letter_id in s]
    assert line.startswith("redriven") and "message deleted" in line, line

    (workout,) = [w for w in workouts.recent_workouts(user, 10) if w.workout_id == workout_id_for(message_id)]
    assert workout.conversation_id in key["pk"]
    time.sleep(0.5)
    assert ours() is None, "the redriven dead letter was deleted"
