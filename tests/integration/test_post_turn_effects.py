"""Post-turn work lands, through the async invoke path and the names the template gives.

The conversation function hands its job to the post-turn function by the deployed name its template
sets (`COACH_CONVERSATION_POST_TURN_FUNCTION_NAME`), through the local Lambda Invoke API, whose function
names are the deployed ones: a name that exists only locally would find no function here either.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from functions.catalog import COACH_CONVERSATION_POST_TURN, STREAM_COACH_CONVERSATION
from local.demo import DEMO_COACH
from local.stack import TABLE_NAME, LocalStack
from shared.coach_conversation.post_turn import SUMMARY_EVERY_MESSAGES
from shared.coach_conversation.post_turn_work import memory_id_for, workout_id_for
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from tests.integration.sse_client import iter_events

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], seconds: float = 20.0) -> T:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the post-turn work never landed")


def turn(stack: LocalStack, path: str, token: str, text: str) -> dict[str, Any]:
    url = stack.function_urls[STREAM_COACH_CONVERSATION.name].url + path
    with httpx.stream(
        "POST", url, headers={"Authorization": f"Bearer {token}"}, json={"userResponse": text}, timeout=30
    ) as response:
        assert response.status_code == 200
        events = [event for _, event in iter_events(response)]
    assert events[-1]["type"] == "complete", events[-1]
    return events[-1]


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

    # The hand-off went to the deployed name, and every call on the way was one the roles allow.
    deployed_target = stack.functions[COACH_CONVERSATION_POST_TURN.name].spec.name
    assert deployed_target == f"coach-stream-{COACH_CONVERSATION_POST_TURN.name}"
    invokes = [c for c in stack.recorded_calls() if c.action == "lambda:InvokeFunction"]
    assert any(c.resource.endswith(f":function:{deployed_target}") and c.verdict == "allowed" for c in invokes)
    post_turn_calls = [c for c in stack.recorded_calls() if c.caller == deployed_target]
    assert {c.action for c in post_turn_calls} >= {"dynamodb:PutItem", "bedrock:InvokeModel"}
    assert all(c.verdict == "allowed" for c in post_turn_calls)
