"""A cold request: process start to the first SSE byte of a real conversation turn.

Both sides serve the same turn against the same local doubles (moto's DynamoDB, the Bedrock double,
the issuer's keys), each run for a user of its own who has never been seen (so no cache, no rate-limit
window, no history carries over):

- our adapter: a new execution environment of stream-coach-conversation (its worker started through
  the exec wrapper with the stack's environment for it) behind the stack's Function URL; the request
  is sent as the worker starts and waits for its first `/next`, as an invocation waits for a cold
  environment in Lambda;
- the reference: `uvicorn bench.reference_app:app` started with the same environment; the request is
  sent as soon as the server accepts connections.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO

import httpx

from bench.conversation import CONVERSATION, Conversation, bundled_asset, conversation_of, ms
from infra.config import InfraConfig
from infra.runtime_python import find_python, install_hint
from local.functions import REPO_ROOT, ExecutionEnvironment, FunctionRuntime, LocalFunction
from local.processes import die_with_parent, free_port
from local.stack import LocalStack, _inherited_environment

RUNS = 7
RATIO_GOAL = 0.45  # our cold request over the reference's, p50


def first_byte(url: str, conversation: Conversation, started: float, exited: Callable[[], bool] = bool) -> float:
    """POST a turn (retrying while nothing listens yet, until `exited()`) and read it to the end: seconds
    from `started` to the first byte of the SSE body."""
    with httpx.Client(timeout=60, headers=conversation.headers) as client:
        while True:
            try:
                with client.stream("POST", url + conversation.path, json={"userResponse": "a cold turn"}) as response:
                    arrived = 0.0
                    body = b""
                    for data in response.iter_raw():
                        arrived = arrived or time.perf_counter() - started
                        body += data
                    break
            except httpx.ConnectError:
                if exited():
                    raise RuntimeError("the server exited before it listened") from None
                time.sleep(0.002)
    if response.status_code != 200 or b'"type":"complete"' not in body:
        raise RuntimeError(f"the cold turn failed: {response.status_code} {body[-300:]!r}")
    return arrived


def adapter_cold_turn(stack: LocalStack, user_id: str, runtime: FunctionRuntime | None = None) -> float:
    """A new environment of the conversation function (on `runtime` when given: an asset and its Python)."""
    front_door = stack.function_urls[CONVERSATION]
    warm = front_door.function
    conversation = conversation_of(stack, user_id)
    spec = dataclasses.replace(warm.spec, concurrency=1, runtime=runtime or warm.spec.runtime)
    cold = LocalFunction(spec, _inherited_environment())
    environment = ExecutionEnvironment(cold.spec, cold._invocations, _inherited_environment())
    cold.environments.append(environment)  # its worker starts below, timed, with the request waiting
    environment.server.start()
    front_door.function = cold
    try:
        started = time.perf_counter()
        environment._spawn()
        arrived = first_byte(front_door.url, conversation, started)
        idle = time.monotonic() + 10
        while environment.server.current is not None and time.monotonic() < idle:
            time.sleep(0.01)  # the invocation ends after its last byte (metrics): stop the worker after it
        # Stopping the worker may reset a keep-alive connection to its Runtime API: nothing to report then.
        environment.server.handle_error = lambda request, client_address: None
        return arrived
    finally:
        front_door.function = warm
        cold.stop()


def reference_cold_turn(stack: LocalStack, user_id: str) -> float:
    conversation = conversation_of(stack, user_id)
    port = free_port()
    env = {**_inherited_environment(), **stack.function_environment(CONVERSATION)}
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = reference_server(port, env, output)
        try:
            return first_byte(f"http://127.0.0.1:{port}", conversation, started, lambda: process.poll() is not None)
        except RuntimeError:
            output.seek(0)
            sys.stderr.write(output.read()[-3000:].decode(errors="replace"))
            raise
        finally:
            process.terminate()
            process.wait()


def reference_server(port: int, env: dict[str, str], output: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """uvicorn serving bench.reference_app on `port`, with `env` (the conversation function's settings);
    its logs and metrics go to `output` when given."""
    command = [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--port", str(port), "--log-level"]
    return subprocess.Popen(
        [*command, "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=output,
        stderr=output,
        preexec_fn=die_with_parent,
    )


@dataclasses.dataclass(frozen=True)
class ColdFloor:
    """What no cold request can beat, whatever the code of the handler: an interpreter's start, and what the
    reference loads on top of the handler (FastAPI and uvicorn's modules), both medians in seconds."""

    interpreter_start: float
    reference_server_import: float

    def best_ratio(self, libraries: float) -> float:
        """Our cold request over the reference's, for a handler that had no code but the libraries' import
        (`libraries` seconds) and answered in no time: the closest the two sides can be."""
        ours = self.interpreter_start + libraries
        return ours / (ours + self.reference_server_import)


def measure_cold_floor(runs: int = 9) -> ColdFloor:
    def median_of(code: str) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    start = median_of("pass")
    server = median_of("import fastapi, fastapi.responses, uvicorn, uvicorn.main") - start
    print(f"  {'interpreter start':30} {start * 1000:7.1f} ms;  FastAPI + uvicorn's import {server * 1000:.1f} ms")
    return ColdFloor(start, server)


def measure_cold_turns(stack: LocalStack) -> tuple[list[float], list[float]]:
    """RUNS cold requests on each side, alternating; returns (ours, reference) in seconds."""
    sides: dict[str, tuple[Callable[[LocalStack, str], float], list[float]]] = {
        "ours": (adapter_cold_turn, []),
        "reference": (reference_cold_turn, []),
    }
    for run in range(RUNS):
        for side, (cold_turn, times) in sides.items():
            times.append(cold_turn(stack, f"bench-cold-{side}-{run}"))
    ours, reference = sides["ours"][1], sides["reference"][1]
    ratio = statistics.median(ours) / statistics.median(reference)
    print(f"\n(b) cold request: process start to the first SSE byte of a conversation turn ({RUNS} runs each)")
    print(f"  {'our adapter':30} {ms(ours)}")
    print(f"  {'FastAPI + uvicorn':30} {ms(reference)}")
    print(f"  {'ours / reference, p50':30} {ratio:7.2f}x  goal <= {RATIO_GOAL:.2f}x")
    deployed_cold_turns(stack)
    return ours, reference


def deployed_cold_turns(stack: LocalStack) -> None:
    """Our side again, the worker on the function's asset as it deploys (Python 3.13, its bytecode, the SDK
    pruned to the services called): the cold request closest to AWS's that this machine can measure."""
    version = InfraConfig().python_version
    python = find_python(version)
    if python is None:
        print(f"  (the deployed asset's cold request not measured: {install_hint(version)})")
        return
    runtime = FunctionRuntime(bundled_asset(CONVERSATION), str(python.executable))
    times = [adapter_cold_turn(stack, f"bench-cold-asset-{run}", runtime) for run in range(RUNS)]
    print(f"  {'ours, the asset on ' + version:30} {ms(times)}")
