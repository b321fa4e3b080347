"""Managed Instances through the local stack: one environment serves N conversation turns at once.

The turns run concurrently in one environment of the conversation function (the adapter's forked
workers); each must keep its own reply in the table and its own metrics line in the function's log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.conversation import conversation_of
from local.bedrock_double import Finish, RecordedRequest, Script, Text
from local.stack import TABLE_NAME, LocalStack, StackPorts
from shared.store.dynamodb.conversations import DynamoConversationRepository
from tests.integration.sse_client import parse_body

pytestmark = pytest.mark.integration

TURNS = 6
CONVERSATION = "stream-coach-conversation"


class LabelledReplies:
    """Turn k answers `label` k + 2 times, slowly enough that all turns overlap."""

    def __call__(self, request: RecordedRequest) -> Script:
        if any("isWorkoutLog" in text for text in request.system_texts):
            return Script.reply('{"isWorkoutLog": false, "complexity": "simple"}', delay=0.05)
        if request.streaming:
            label = request.last_user_text.split()[-1]
            repeats = int(label.removeprefix("turn")) + 2
            return Script((*(Text(f"{label} ", 0.4) for _ in range(repeats)), Finish()))
        return Script.reply("[]", delay=0.01)


@pytest.fixture(scope="module")
def managed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    state = tmp_path_factory.mktemp("managed-state")
    log = state / "functions.log"
    stack = LocalStack(
        StackPorts.ephemeral(),
        state,
        concurrency=1,
        environment_concurrency=TURNS,
        function_output=log,
        model="double",
        deploy_environ={},
        overrides_file=None,
    ).start()
    assert stack.bedrock is not None
    stack.bedrock.responder = LabelledReplies()
    try:
        yield stack, log
    finally:
        stack.stop()


def test_n_turns_at_once_in_one_environment_each_keep_their_reply_and_metrics(
    managed_stack: tuple[LocalStack, Path],
) -> None:
    stack, log = managed_stack
    conversations = [conversation_of(stack, f"managed-user-{k}") for k in range(TURNS)]
    base = stack.function_urls[CONVERSATION].url
    answers: dict[int, httpx.Response] = {}

    def turn(k: int) -> None:
        conversation = conversations[k]
        body = {"userResponse": f"managed instances turn{k}"}
        answers[k] = httpx.post(base + conversation.path, json=body, headers=conversation.headers, timeout=60)

    threads = [threading.Thread(target=turn, args=(k,)) for k in range(TURNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    function = stack.functions[CONVERSATION]
    assert len(function.environments) == 1, "one environment served every turn"
    assert stack.bedrock is not None
    streams = [r for r in stack.bedrock.requests if r.streaming]
    first_end = min(r.delta_times[-1] for r in streams)
    assert max(r.received_at for r in streams) < first_end, "every reply began before any ended: they overlapped"
    repository = DynamoConversationRepository(stack.dynamodb.resource().Table(TABLE_NAME))
    for k, conversation in enumerate(conversations):
        events = parse_body(answers[k].text)
        assert events[-1]["type"] == "complete", events[-1]
        reply = "".join(e["content"] for e in events if e["type"] == "chunk")
        assert reply.split() == [f"turn{k}"] * (k + 2)
        conversation_id = conversation.path.split("/conversations/")[1].split("/")[0]
        stored = repository.list_messages(f"managed-user-{k}", conversation_id)
        assert stored[-1].content.split() == [f"turn{k}"] * (k + 2), "its own reply, whole"

    metric_lines = _metric_lines(log, "OutputTokens")
    assert len(metric_lines) == TURNS
    assert len({line["requestId"] for line in metric_lines}) == TURNS, "one line per invocation"
    for line in metric_lines:
        for name in ("OutputTokens", "TimeToFirstToken", "StreamDuration"):
            assert not isinstance(line[name], list) or len(line[name]) == 1, f"{name} mixed: {line[name]}"
    tokens = sorted(_one(line["OutputTokens"]) for line in metric_lines)
    assert len(set(tokens)) == TURNS, f"each line counts its own reply's tokens: {tokens}"


def _metric_lines(log: Path, metric: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        lines = []
        for raw in log.read_text(errors="replace").splitlines():
            if raw.startswith("{") and '"_aws"' in raw and f'"{metric}"' in raw:
                lines.append(json.loads(raw))
        if len(lines) >= TURNS or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def _one(value: float | list[float]) -> float:
    return value[0] if isinstance(value, list) else value
