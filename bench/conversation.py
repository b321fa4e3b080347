"""A whole conversation turn through the local stack, with the Bedrock double at a fixed pace.

The double's router answers after ROUTER_S and the reply's first token comes FIRST_TOKEN_S after
the stream opens, so "first chunk minus (router + first token)" is what our own path adds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from functions.catalog import FUNCTIONS
from local.bedrock_double import CoachResponder, Finish, RecordedRequest, Script, Text
from local.demo import DEMO_COACH_ID, DEMO_USER_ID
from local.deployed import synthesize
from local.functions import REPO_ROOT
from local.stack import TABLE_NAME, LocalStack, StackPorts
from shared.store.dynamodb.conversations import DynamoConversationRepository

ROUTER_S = 0.3
FIRST_TOKEN_S = 0.3
PIECES = 20
PIECE_S = 0.02
TURNS = 15


class PacedModel:
    def __init__(self) -> None:
        self.default = CoachResponder(speed=50)

    def __call__(self, request: RecordedRequest) -> Script:
        if any("isWorkoutLog" in text for text in request.system_texts):
            return Script.reply('{"isWorkoutLog": false, "complexity": "simple"}', delay=ROUTER_S)
        if request.streaming:
            pieces = [Text("Coach ", FIRST_TOKEN_S)] + [Text(f"word{n} ", PIECE_S) for n in range(PIECES - 1)]
            return Script((*pieces, Finish()))
        return self.default(request)


def _median_ms(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1000:7.1f} ms (p95 {sorted(values)[int(0.95 * (len(values) - 1))] * 1000:.1f})"
    )


def measure_turns() -> None:
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(StackPorts.ephemeral(), Path(state), concurrency=1, model="double").start()
        try:
            assert stack.bedrock is not None
            stack.bedrock.responder = PacedModel()
            repository = DynamoConversationRepository(stack.dynamodb.resource().Table(TABLE_NAME))
            conversation = repository.create_conversation(DEMO_USER_ID, DEMO_COACH_ID, "bench")
            token = stack.issuer.mint(DEMO_USER_ID)
            path = f"/users/{DEMO_USER_ID}/coaches/{DEMO_COACH_ID}/conversations/{conversation.conversation_id}/stream"
            url = stack.function_urls["stream-coach-conversation"].url + path
            starts, firsts, wholes = [], [], []
            with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
                for turn in range(TURNS + 1):
                    started = time.perf_counter()
                    start = first = 0.0
                    with client.stream("POST", url, json={"userResponse": f"bench turn {turn}"}) as response:
                        for line in response.iter_lines():
                            now = time.perf_counter() - started
                            if not start and '"type":"start"' in line:
                                start = now
                            if not first and '"type":"chunk"' in line:
                                first = now
                    if turn:  # the first turn warms the worker's clients
                        starts.append(start)
                        firsts.append(first)
                        wholes.append(time.perf_counter() - started)
        finally:
            stack.stop()
    overhead = [f - ROUTER_S - FIRST_TOKEN_S for f in firsts]
    print(f"\nconversation turn through the local stack ({TURNS} turns, model double: router {ROUTER_S * 1000:.0f} ms,")
    print(f"first token {FIRST_TOKEN_S * 1000:.0f} ms, then {PIECES - 1} pieces {PIECE_S * 1000:.0f} ms apart)")
    print(f"  {'time to start':26} {_median_ms(starts)}")
    print(f"  {'time to first chunk':26} {_median_ms(firsts)}")
    print(f"  {'  minus router+first token':26} {_median_ms(overhead)}  <- our path's own cost")
    print(f"  {'whole turn':26} {_median_ms(wholes)}")


def measure_imports() -> None:
    """Module import of each streaming handler in a fresh interpreter (DESIGN: well under 0.5 s)."""
    print("\nimport of a streaming handler module in a fresh interpreter (5 runs)")
    deployed = synthesize(FUNCTIONS, {})
    for name in ("stream-coach-conversation", "stream-coach-creator-session"):
        module = deployed.function(name).handler.rpartition(".")[0]
        env = {**os.environ, **deployed.function(name).placeholder_environment()}  # the import validates it
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=env
                ).stdout
            )
            for _ in range(5)
        ]
        print(f"  {name:34} median {statistics.median(times) * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms")
