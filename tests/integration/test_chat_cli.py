"""`python -m local chat` against the local stack, as a person (or a script) runs it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from local.demo import DEMO_COACH, DEMO_COACH_ID
from local.stack import TABLE_NAME, LocalStack
from shared.store.dynamodb.coaches import DynamoCoachRepository

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def chat(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local", "chat", "--state-dir", str(stack.state_dir), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_one_message_streams_the_reply_and_a_timing_line(stack):
    result = chat(stack, "-m", "hello")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    reply = next(line for line in lines if line.startswith("coach> "))
    assert len(reply) > len("coach> "), result.stdout
    assert any(line.startswith("  [") and line.endswith("]") for line in lines), "progress lines in brackets"
    timing = next(line for line in lines if line.startswith("timing: "))
    assert "start " in timing and "first chunk " in timing and "total " in timing
    assert "chunks" in timing and "output tokens" in timing
    assert "\x1b[" not in result.stdout, "no ANSI codes when stdout is not a terminal"


def test_raw_prints_the_sse_lines_in_a_new_conversation_of_another_user(stack):
    user_id = f"chat-{uuid.uuid4().hex[:8]}"  # leaves the demo user's per-minute rate limit alone
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    DynamoCoachRepository(table).create_coach(DEMO_COACH.model_copy(update={"user_id": user_id}))
    result = chat(stack, "-m", "hello again", "--raw", "--user-id", user_id, "--coach-id", DEMO_COACH_ID)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("data: {") and '"start"' in lines[0], lines[:3]
    assert lines[1] == ""
    assert '"type":"complete"' in result.stdout.replace(" ", "")
    assert "timing: " in result.stderr


def test_a_rejected_token_is_explained_in_words(stack):
    result = chat(stack, "-m", "hello", "--token", "not-a-token")
    assert result.returncode == 1
    assert "token rejected: " in result.stderr
