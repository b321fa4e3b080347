"""The real local model's figures: SmolLM2-135M-Instruct on llama.cpp, as `make dev-llm` runs it.

Reproduce with `.venv/bin/python -m bench.real_model` (the last part of `make bench`). It needs the
model installed (`make dev-llm` once, or `scripts/install-llm.sh`) and skips with a message otherwise:
a bench should print figures, not spend minutes building llama.cpp.

- the model through the real OpenAI-compatible adapter: time to first token and tokens per second;
- a whole conversation turn through the local stack with the model behind it: the functions reach the
  server through a recording proxy that notes when the reply's first token leaves the server, and the
  client notes when its first `chunk` event arrives. The difference is what the turn adds in front of
  the model's own first token. The router (the side call) runs beside the reply on the same one-at-a-time
  server, so the reply's own first token may wait for it: printed apart, as "reply request to first token".
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.conversation import CONVERSATION, conversation_of, percentile
from local.llama_server import DESCRIPTION, MODEL_ALIAS, LlamaServer, is_installed
from local.processes import LoopbackHTTPServer
from local.stack import LocalStack, StackPorts
from shared.models import Message, ModelRequest, ModelSettings, SystemPrompt, TextDelta
from shared.models.openai_compat import OpenAICompatibleModel

RUNS = 5  # each after one warm-up
TURNS = 5
MAX_TOKENS = 128
PROMPT = "I did 5x5 squats at 100kg today. How should I progress next week?"
SYSTEM = SystemPrompt(static="You are Coach Riley, a friendly strength coach.", cache=False)
IDLE_S = 5.0  # the model is idle once no request ran for this long (the post-turn work also calls it)


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:7.1f} ms  p95 {percentile(values, 0.95) * 1000:7.1f} ms"


def measure_model(server: LlamaServer) -> tuple[list[float], list[float]]:
    """Time to first token and generation rate, through the adapter, `RUNS` times."""
    settings = ModelSettings(provider="openai", openai_base_url=server.url, max_attempts=1)
    model = OpenAICompatibleModel(settings)
    first_tokens: list[float] = []
    rates: list[float] = []
    for run in range(RUNS + 1):
        # A new question each time, after the same system prompt: the server reuses what a conversation would.
        question = Message("user", f"Week {run + 1}: {PROMPT}")
        request = ModelRequest(MODEL_ALIAS, (question,), SYSTEM, max_tokens=MAX_TOKENS, temperature=0.0)
        started = time.perf_counter()
        first = 0.0
        pieces = 0  # llama-cpp-python streams one token a piece and no usage
        for event in model.stream(request):
            if isinstance(event, TextDelta):
                first = first or time.perf_counter()
                pieces += 1
        finished = time.perf_counter()
        if run and pieces > 1:
            first_tokens.append(first - started)
            rates.append((pieces - 1) / (finished - first))
    load = os.getloadavg()[0]  # the figures swing with what else runs on the machine's two cores
    print(f"\nreal model: {DESCRIPTION}, {RUNS} streamed replies of up to {MAX_TOKENS} tokens, temperature 0")
    print(f"  {'load average (1 min)':30} {load:.1f} on {os.cpu_count()} cores")
    print(f"  {'time to first token':30} {ms(first_tokens)}")
    rate = f"p50 {statistics.median(rates):7.1f} tok/s  min {min(rates):7.1f} tok/s"
    print(f"  {'tokens per second':30} {rate}", flush=True)
    return first_tokens, rates


@dataclass
class Call:
    """One request the functions made to the model, as the proxy saw it (wall-clock times)."""

    stream: bool
    sent: float
    first_token: float = 0.0
    done: float = 0.0


class RecordingProxy(LoopbackHTTPServer):
    """Forwards chat completions to the server unchanged and notes when each reply's first token passed."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.calls: list[Call] = []
        self.in_flight = 0
        self.last_activity = time.monotonic()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a function that gave up on a call (its read timeout) closed the connection: not the bench's failure

    def wait_idle(self, quiet: float = IDLE_S, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.in_flight and time.monotonic() - self.last_activity >= quiet:
                    return
            time.sleep(0.1)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no framing to rewrite
    server: RecordingProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        call = Call(stream=bool(json.loads(body).get("stream")), sent=time.time())
        with self.server.lock:
            self.server.calls.append(call)
            self.server.in_flight += 1
        upstream = http.client.HTTPConnection(self.server.upstream.netloc, timeout=300)
        try:
            upstream.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
            response = upstream.getresponse()
            self.send_response(response.status)
            self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
            self.end_headers()
            for line in response:
                if call.stream and not call.first_token and _has_text(line):
                    call.first_token = time.time()
                self.wfile.write(line)
                self.wfile.flush()
        finally:
            upstream.close()
            call.done = time.time()
            with self.server.lock:
                self.server.in_flight -= 1
                self.server.last_activity = time.monotonic()


def _has_text(line: bytes) -> bool:
    if not line.startswith(b"data:") or b"[DONE]" in line:
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


@dataclass
class Turn:
    first_chunk: float  # wall clock, at the client
    reply: Call
    ahead: int  # calls the server was busy with when the reply was asked (the router, late post-turn work)


def measure_turns(server: LlamaServer, state: Path) -> list[Turn]:
    proxy = RecordingProxy(server.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    environ = {"OPENAI_BASE_URL": proxy.url, "MODEL_ID_REPLY": MODEL_ALIAS, "MODEL_ID_SIDE": MODEL_ALIAS}
    stack = LocalStack(
        StackPorts.ephemeral(), state, concurrency=1, model="openai", deploy_environ=environ, overrides_file=None
    )
    turns: list[Turn] = []
    try:
        stack.start()
        conversation = conversation_of(stack)
        url = stack.function_urls[CONVERSATION].url + conversation.path
        with httpx.Client(timeout=300, headers=conversation.headers) as client:
            for turn in range(TURNS + 1):
                proxy.wait_idle()
                began = time.time()
                first_chunk = 0.0
                body = {"userResponse": f"{PROMPT} (turn {turn})"}
                with client.stream("POST", url, json=body) as response:
                    for line in response.iter_lines():
                        if not first_chunk and '"type":"chunk"' in line:
                            first_chunk = time.time()
                replies = [c for c in proxy.calls if c.stream and c.sent >= began and c.first_token]
                if turn and first_chunk and replies:  # the first turn warms the worker and the prompt cache
                    reply = replies[0]
                    ahead = sum(1 for c in proxy.calls if c is not reply and c.sent <= reply.sent < (c.done or 1e12))
                    turns.append(Turn(first_chunk, reply, ahead))
    finally:
        stack.stop()
        proxy.shutdown()
        proxy.server_close()
    added = [t.first_chunk - t.reply.first_token for t in turns]
    waits = [t.reply.first_token - t.reply.sent for t in turns]
    print(f"\nreal model behind a conversation turn (local stack, {len(turns)} warm turns of {TURNS})")
    print(f"  {'reply request to first token':30} {ms(waits)}  (the model's, queue included)")
    print(f"  {'calls ahead of the reply':30} {[t.ahead for t in turns]}  (the router, when it was asked first)")
    print(f"  {'first chunk - first token':30} {ms(added)}  (what the turn adds)", flush=True)
    return turns


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    if not is_installed():
        print("\nreal model: not installed, skipped (run `make dev-llm` once, or scripts/install-llm.sh)")
        return
    with tempfile.TemporaryDirectory() as state:
        server = LlamaServer(log_path=Path(state) / "llama-server.log").start(timeout=120)
        try:
            measure_model(server)
            measure_turns(server, Path(state) / "stack")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
