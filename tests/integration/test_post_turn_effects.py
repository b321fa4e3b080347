"""Post-turn work lands through the table's stream, as the templates define it, and a job that keeps failing
is kept in the dead-letter queue.

A turn writes its post-turn job as an outbox item in its reply's transaction; the local event source
mapping (the template's `AWS::Lambda::EventSourceMapping`, `local/event_source_mapping.py`) reads the local
table's stream with the post-turn function's role, filters, batches and invokes the post-turn function. No
conversation function invokes anything: the only way the work gets done here is the stream, as in AWS.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from functions.catalog import (
    COACH_CONVERSATION_POST_TURN,
    POST_TURN_ITEM_TYPE,
    SEND_COACH_CONVERSATION_MESSAGE,
    STREAM_COACH_CONVERSATION,
)
from local.demo import DEMO_COACH
from local.stack import TABLE_NAME, LocalStack
from ops.stream_events import read_batch
from shared.coach_conversation.post_turn import SUMMARY_EVERY_MESSAGES, PostTurnJob
from shared.coach_conversation.post_turn_work import memory_id_for, workout_id_for
from shared.store.dynamodb import keys
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from tests.fixtures.local_faults import eventually, write_post_turn_job
from tests.fixtures.local_faults import refusing_model as refusing
from tests.integration.sse_client import iter_events

STREAM_READS = {"dynamodb:ListStreams", "dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"}


def turn(stack: LocalStack, path: str, token: str, text: str) -> dict[str, Any]:
    url = stack.function_urls[STREAM_COACH_CONVERSATION.name].url + path
    with httpx.stream(
        "POST", url, headers={"Authorization": f"Bearer {token}"}, json={"userResponse": text}, timeout=30
    ) as response:
        assert response.status_code == 200
        events = [event for _, event in iter_events(response)]
    assert events[-1]["type"] == "complete", events[-1]
    return events[-1]


def deployed_name(stack: LocalStack, catalog_name: str) -> str:
    return stack.functions[catalog_name].spec.name


def test_a_workout_a_memory_and_a_summary_are_stored_after_the_turns_that_call_for_them(stack):
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    conversations = DynamoConversationRepository(table)
    user, coach = f"post-turn-{uuid.uuid4().hex[:8]}", DEMO_COACH.coach_id  # its own per-minute rate limit
    DynamoCoachRepository(table).create_coach(DEMO_COACH.model_copy(update={"user_id": user}))
    conversation = conversations.create_conversation(user, coach, "post-turn")
    path = f"/users/{user}/coaches/{coach}/conversations/{conversation.conversation_id}/stream"
    token = stack.issuer.mint(user)

    first = turn(stack, path, token, "I did 5x5 squats at 100kg today. I have a sore left knee.")
    message_id = first["userMessage"]["id"]
    # The job was written with the reply: the outbox item the stream delivers.
    outbox = table.get_item(
        Key={"pk": keys.conversation_pk(user, conversation.conversation_id), "sk": keys.post_turn_sk(message_id)}
    ).get("Item")
    assert outbox is not None, "the turn wrote no outbox item"
    assert outbox["type"] == POST_TURN_ITEM_TYPE
    assert PostTurnJob.model_validate(outbox["job"]).user_message_id == message_id
    workout = eventually(
        lambda: next(
            (
                w
                for w in DynamoWorkoutRepository(table).recent_workouts(user, 50)
                if w.workout_id == workout_id_for(message_id)
            ),
            None,
        )
    )
    assert workout.conversation_id == conversation.conversation_id
    memory = eventually(
        lambda: next(
            (
                m
                for m in DynamoMemoryRepository(table).recent_memories(user, coach, 50)
                if m.memory_id == memory_id_for(message_id, 0)
            ),
            None,
        )
    )
    assert "knee" in memory.content.lower()

    # Every SUMMARY_EVERY_MESSAGES messages (a user message and a reply per turn) the summary is refreshed.
    for _ in range(SUMMARY_EVERY_MESSAGES // 2 - 1):
        turn(stack, path, token, "How should I warm up?")
    summarized = eventually(
        lambda: (
            (found := conversations.get_conversation(user, coach, conversation.conversation_id))
            and found.summarized_through >= SUMMARY_EVERY_MESSAGES
            and found
        )
    )
    assert summarized.summary

    # The stream carried it: the mapping read with the post-turn function's role, the function ran with it,
    # and every one of those calls is one the synthesized role allows. Nobody invoked anything.
    calls = stack.recorded_calls()
    post_turn = deployed_name(stack, COACH_CONVERSATION_POST_TURN.name)
    post_turn_calls = [c for c in calls if c.caller == post_turn]
    assert {c.action for c in post_turn_calls} >= STREAM_READS | {"dynamodb:PutItem", "bedrock:InvokeModel"}
    assert all(c.verdict == "allowed" for c in post_turn_calls)
    conversation_functions = {
        deployed_name(stack, d.name) for d in (STREAM_COACH_CONVERSATION, SEND_COACH_CONVERSATION_MESSAGE)
    }
    assert not [c for c in calls if c.caller in conversation_functions and c.service == "lambda"]
    functions = {f.spec.name for f in stack.functions.values()}  # an operator's redrive may invoke it, no function
    assert not [
        c
        for c in calls
        if c.caller in functions and c.action == "lambda:InvokeFunction" and c.resource.endswith(f":{post_turn}")
    ]


@pytest.fixture
def refusing_model(stack: LocalStack) -> Iterator[str]:
    with refusing(stack) as refusal:
        yield refusal.marker


def test_a_post_turn_job_that_keeps_failing_ends_in_the_dead_letter_queue(stack, refusing_model):
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    user = f"dlq-{uuid.uuid4().hex[:8]}"
    item_key, _ = write_post_turn_job(table, user, f"I did 5x5 squats at 100kg today {refusing_model}")
    (poller,) = [p for p in stack.stream_pollers if p.mapping.function_name.endswith(COACH_CONVERSATION_POST_TURN.name)]
    sqs = stack.dynamodb.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=poller.mapping.on_failure_destination.rsplit(":", 1)[1])["QueueUrl"]

    def dead_letter() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(message["Body"])
            if _stream_keys(stack, body) == item_key:  # the letter names the record; the stream gives its keys
                return body
        return None

    letter = eventually(dead_letter, seconds=60, what="the dead letter")

    source = COACH_CONVERSATION_POST_TURN.stream_source
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == 1 + source.retry_attempts
    assert letter["requestContext"]["functionArn"].endswith(f":function:{poller.mapping.function_name}")
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 1
    # The job itself was never lost: its item is still in the table, and nothing was stored for it.
    assert "Item" in table.get_item(Key=item_key)
    assert not DynamoWorkoutRepository(table).recent_workouts(user, 10)
    # The model refused each attempt: the first and every retry reached the function.
    refused = [r for r in stack.bedrock.requests if refusing_model in r.last_user_text]
    assert len(refused) >= 1 + source.retry_attempts
    calls = [c for c in stack.recorded_calls() if c.caller == poller.mapping.function_name]
    assert {"sqs:GetQueueUrl", "sqs:SendMessage"} <= {c.action for c in calls if c.verdict == "allowed"}


def _stream_keys(stack: LocalStack, letter: dict[str, Any]) -> dict[str, str] | None:
    """The keys of the first record a dead letter names, read back from the stream (as an operator would)."""
    records = read_batch(stack.dynamodb.client("dynamodbstreams"), letter["DDBStreamBatchInfo"])
    return {name: value["S"] for name, value in records[0]["dynamodb"]["Keys"].items()} if records else None
