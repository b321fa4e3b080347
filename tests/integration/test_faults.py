"""Conversation turns when things break: a worker killed mid-stream, the database stalling past the
client's read timeout or failing a write, two turns at once. Through the local stack, with faults
injected into its DynamoDB (`local/db_faults.py`); each test checks what the client saw and what the
table holds, read directly."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from boto3.dynamodb.conditions import Key

from functions.catalog import STREAM_COACH_CONVERSATION
from local.bedrock_double import Finish, RecordedRequest, Script, Stall, Text
from local.db_faults import FaultControl, FaultRule
from local.demo import DEMO_COACH
from local.stack import TABLE_NAME, LocalStack
from shared.store.dynamodb import keys
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from tests.fixtures.deployed_runtime import child_processes
from tests.integration.conftest import SHORT_BUDGET_CONVERSATION
from tests.integration.model_script import TurnScript, pieces, router_reply
from tests.integration.sse_client import EventCollector, parse_body

pytestmark = pytest.mark.integration

# botocore's DynamoDB client reads for 1.5 s (shared/aws_clients.py): a longer stall makes it retry.
PAST_THE_READ_TIMEOUT = 2.0
REPLY_WRITE = '"assistant"'  # only the reply's transaction carries an assistant message


@dataclass
class Chat:
    """One user's conversation with the demo coach: its own user, so its own rate limit."""

    stack: LocalStack
    user_id: str
    conversation_id: str

    @classmethod
    def start(cls, stack: LocalStack) -> Chat:
        table = stack.dynamodb.resource().Table(TABLE_NAME)
        user_id = f"faults-{uuid.uuid4().hex[:8]}"
        DynamoCoachRepository(table).create_coach(DEMO_COACH.model_copy(update={"user_id": user_id}))
        conversation = DynamoConversationRepository(table).create_conversation(user_id, DEMO_COACH.coach_id, "faults")
        return cls(stack, user_id, conversation.conversation_id)

    def request(self, text: str, client_message_id: str | None, function: str) -> dict[str, Any]:
        url = self.stack.function_urls[function].url
        body = {"userResponse": text} | ({"clientMessageId": client_message_id} if client_message_id else {})
        return {
            "url": f"{url}/users/{self.user_id}/coaches/{DEMO_COACH.coach_id}/conversations/{self.conversation_id}/stream",
            "headers": {"Authorization": f"Bearer {self.stack.issuer.mint(self.user_id)}"},
            "json": body,
            "timeout": 30,
        }

    def send(
        self, text: str, client_message_id: str | None = None, function: str = STREAM_COACH_CONVERSATION.name
    ) -> httpx.Response:
        return httpx.post(**self.request(text, client_message_id, function))

    def items(self, sk_prefix: str) -> list[dict[str, Any]]:
        """The conversation partition's items under `sk_prefix`, in key order, as the table holds them."""
        table = self.stack.dynamodb.resource().Table(TABLE_NAME)
        condition = Key("pk").eq(keys.conversation_pk(self.user_id, self.conversation_id))
        found = table.query(KeyConditionExpression=condition & Key("sk").begins_with(sk_prefix), ConsistentRead=True)
        return found["Items"]

    def messages(self) -> list[tuple[str, str]]:
        """(role, content) of every stored message a reader is shown (superseded partial replies are not)."""
        shown = [i["message"] for i in self.items("MSG#") if not i["message"].get("metadata", {}).get("superseded")]
        return [(message["role"], message["content"]) for message in shown]

    def message_count(self) -> int:
        table = self.stack.dynamodb.resource().Table(TABLE_NAME)
        key = {"pk": keys.user_pk(self.user_id), "sk": keys.conversation_sk(DEMO_COACH.coach_id, self.conversation_id)}
        return int(table.get_item(Key=key, ConsistentRead=True)["Item"].get("message_count", 0))

    def marker(self, client_message_id: str) -> dict[str, Any]:
        (marker,) = self.items(keys.client_message_sk(client_message_id))
        return marker


@dataclass
class ByUserText:
    """Each turn's script chosen by its user's words, so that concurrent turns can be told apart: the words
    said last (an earlier turn's message may precede them in the same request)."""

    turns: dict[str, TurnScript]

    def __call__(self, request: RecordedRequest) -> Script:
        text = request.last_user_text
        return self.turns[max(self.turns, key=text.rfind)](request)


@pytest.fixture
def chat(stack: LocalStack) -> Chat:
    return Chat.start(stack)


@pytest.fixture
def coach(stack: LocalStack) -> Iterator[Any]:
    """Sets the model double's script for a test (`coach(responder)`) and restores the default after."""
    assert stack.bedrock is not None
    default = stack.bedrock.responder

    def use(responder: Any) -> None:
        stack.bedrock.responder = responder

    yield use
    stack.bedrock.responder = default


@pytest.fixture
def faults(stack: LocalStack) -> Iterator[FaultControl]:
    """The stack's DynamoDB without faults, until a test sets some; without them again after it."""
    with FaultControl(stack.dynamodb.endpoint).injected() as control:
        yield control


def event_types(response: httpx.Response) -> list[str]:
    return [event["type"] for event in parse_body(response.text)]


def serving_worker(stack: LocalStack, function: str) -> int:
    """The pid of the one worker of `function` serving an invocation now (found from /proc)."""
    busy = [e.server.address for e in stack.functions[function].environments if e.server.current is not None]
    assert len(busy) == 1, f"{len(busy)} workers of {function} are busy"
    runtime_api = busy[0]
    (pid,) = [v.pid for v in child_processes(os.getpid()) if v.environment.get("AWS_LAMBDA_RUNTIME_API") == runtime_api]
    return pid


def transaction_requests(stack: LocalStack) -> int:
    """The `TransactWriteItems` requests the conversation function has sent so far, each attempt counted."""
    caller = stack.functions[STREAM_COACH_CONVERSATION.name].spec.name
    calls = stack.recorded_calls()
    return len({c.request_id for c in calls if c.caller == caller and c.operation == "TransactWriteItems"})


def wait_until(condition: Any, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_worker_killed_mid_stream_leaves_a_claim_that_lapses_then_a_retry_completes(stack, chat, coach):
    function = SHORT_BUDGET_CONVERSATION.name
    coach(TurnScript(reply=Script.of(*pieces("Before ", "the "), Stall(10), Text("never"), Finish())))
    with httpx.stream("POST", **chat.request("kill me", "killed-1", function)) as response:
        assert response.status_code == 200
        collector = EventCollector(response)
        wait_until(lambda: any(event["type"] == "chunk" for _, event in collector.events))
        os.kill(serving_worker(stack, function), signal.SIGKILL)
        seen = [event["type"] for event in collector.join()]
    assert "chunk" in seen
    assert "complete" not in seen and "error" not in seen, "the stream just ends: the worker died, not the turn"

    coach(TurnScript(reply=Script.reply("Answered ", "again.")))
    early = chat.send("kill me", "killed-1", function)
    assert (early.status_code, early.json()["error"]["code"]) == (409, "CONFLICT"), "still in progress"
    marker = chat.marker("killed-1")
    assert marker["state"] == "pending"
    lapses_at = int(marker["pendingUntil"]) + 1  # a claim lapses once its second has passed
    assert lapses_at - time.time() < 15, "the claim outlives the turn's deadline by its margin only"
    time.sleep(max(0.0, lapses_at - time.time()))

    retried = chat.send("kill me", "killed-1", function)
    assert retried.status_code == 200
    events = parse_body(retried.text)
    assert events[-1]["type"] == "complete"
    assert events[-1]["userMessage"]["id"] == marker["userMessage"]["id"]
    assert chat.messages() == [("user", "kill me"), ("assistant", "Answered again.")]
    assert chat.marker("killed-1")["state"] == "complete"


def test_a_first_write_answered_after_the_read_timeout_is_not_refused_or_stored_twice(stack, chat, coach, faults):
    coach(TurnScript(reply=Script.reply("Steady.")))
    stall = FaultRule.stall_after("TransactWriteItems", PAST_THE_READ_TIMEOUT, contains=[chat.conversation_id])
    faults.set(stall)
    sent = transaction_requests(stack)
    response = chat.send("slow database", "stalled-1")
    assert response.status_code == 200, response.text  # no false 409 (its own marker) or 500
    assert [rule.fired for rule in faults.rules()] == [1]
    assert transaction_requests(stack) - sent == 3, "the first write, botocore's retry of it, the reply's"
    assert event_types(response)[-1] == "complete"
    assert chat.messages() == [("user", "slow database"), ("assistant", "Steady.")]
    assert chat.message_count() == 2, "the retried transaction counted its message once"


def test_a_reply_write_answered_after_the_read_timeout_completes_once(stack, chat, coach, faults):
    coach(TurnScript(router=router_reply(hasMemoryToSave=True), reply=Script.reply("Noted ", "that.")))
    stall = FaultRule.stall_after(
        "TransactWriteItems", PAST_THE_READ_TIMEOUT, contains=[chat.conversation_id, REPLY_WRITE]
    )
    faults.set(stall)
    sent = transaction_requests(stack)
    response = chat.send("remember my knee")
    assert [rule.fired for rule in faults.rules()] == [1]
    assert transaction_requests(stack) - sent == 3, "the first write, the reply's, botocore's retry of it"
    events = parse_body(response.text)
    assert events[-1]["type"] == "complete"
    assert chat.messages() == [("user", "remember my knee"), ("assistant", "Noted that.")]
    assert chat.message_count() == 2
    outbox = chat.items("POSTTURN#")
    assert [item["sk"] for item in outbox] == [keys.post_turn_sk(events[-1]["userMessage"]["id"])]


def test_a_reply_write_that_keeps_failing_ends_in_error_and_a_retry_answers_once(stack, chat, coach, faults):
    coach(TurnScript(reply=Script.reply("Lost ", "reply.")))
    failing = FaultRule.fail("TransactWriteItems", contains=[chat.conversation_id, REPLY_WRITE], times=3)
    faults.set(failing)
    first = parse_body(chat.send("fragile", "failed-1").text)
    assert [rule.fired for rule in faults.rules()] == [3], "every attempt the SDK made failed"
    types = [event["type"] for event in first]
    assert types[-1] == "error" and "chunk" in types, types
    assert first[-1]["code"] == "INTERNAL_ERROR"
    assert chat.messages() == [("user", "fragile")], "the user's message stays"
    marker = chat.marker("failed-1")
    assert marker["state"] == "failed", "released for a retry at once, not at the claim's expiry"

    coach(TurnScript(reply=Script.reply("Second ", "try.")))
    retried = parse_body(chat.send("fragile", "failed-1").text)
    assert retried[-1]["type"] == "complete"
    assert retried[-1]["userMessage"]["id"] == marker["userMessage"]["id"], "the stored message is answered again"
    assert chat.messages() == [("user", "fragile"), ("assistant", "Second try.")]
    assert chat.marker("failed-1")["state"] == "complete"


def test_two_turns_at_once_store_each_reply_right_after_its_message(stack, chat, coach):
    slow = Script.of(*pieces("First ", "reply ", "takes ", "longer.", delay=0.25), Finish())
    coach(ByUserText({"one": TurnScript(reply=slow), "two": TurnScript(reply=Script.reply("Second reply."))}))
    completed: dict[str, float] = {}

    def turn(text: str, began: threading.Event) -> None:
        with httpx.stream("POST", **chat.request(text, None, STREAM_COACH_CONVERSATION.name)) as response:
            collector = EventCollector(response)
            collector.wait_for(1)  # `start`: its user message is stored
            began.set()
            events = collector.join()
        assert events[-1]["type"] == "complete", events[-1]
        completed[text] = time.monotonic()

    first_began, second_began = threading.Event(), threading.Event()
    first = threading.Thread(target=turn, args=("turn one", first_began))
    first.start()
    assert first_began.wait(10)
    turn("turn two", second_began)
    first.join(15)
    assert set(completed) == {"turn one", "turn two"}
    assert completed["turn two"] < completed["turn one"], "the turns overlapped: the second finished first"
    assert chat.messages() == [
        ("user", "turn one"),
        ("assistant", "First reply takes longer."),
        ("user", "turn two"),
        ("assistant", "Second reply."),
    ]
