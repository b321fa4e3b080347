"""Print the streaming figures: through the local stack (our adapter) and through FastAPI + uvicorn.

Reproduce with `make bench` (or `.venv/bin/python -m bench`). Both servers run on this machine and
are measured by the same client over loopback HTTP. The three figures with goals, (a) first chunk
minus first token, (b) the cold request against the reference, (c) the handler's import, are printed
where they are measured and again side by side at the end; then Managed Instances against classic
Lambda (`bench.managed_instances`), and the real local model when installed (`bench.real_model`).
`python -m bench.burst` and `python -m bench.soak` measure the local Lambda itself: a burst of new
clients, and the local DynamoDB over 1,000 turns.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench import managed_instances, real_model
from bench.cold_turn import RATIO_GOAL, ColdFloor, measure_cold_floor, measure_cold_turns, reference_server
from bench.conversation import (
    CONVERSATION,
    CREATOR,
    FIRST_CHUNK_GOAL_MS,
    IMPORT_GOAL_MS,
    LIBRARIES,
    ROUTER_S,
    TurnFigures,
    measure_imports,
    measure_turns,
    percentile,
    turn_stack,
)
from functions.catalog import FUNCTIONS, FunctionDefinition
from local.deployed import synthesize
from local.functions import ExecutionEnvironment, FunctionSpec
from local.processes import free_port
from local.stack import LocalStack, StackPorts

BENCH_FUNCTION = FunctionDefinition(
    name="bench-stream",
    folder="",
    streaming=True,
    handler="bench.handlers.handler",
    local_port=None,
)


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    scaled = [v * scale for v in values]
    return (
        f"p50 {statistics.median(scaled):7.2f} {unit}  p95 {percentile(scaled, 0.95):7.2f} {unit}"
        f"  max {max(scaled):7.2f} {unit}  (n={len(values)})"
    )


def stream_events(client: httpx.Client, url: str) -> tuple[float, list[tuple[float, dict]]]:
    """POST and read SSE; returns time to first byte and (receipt time, event) pairs."""
    started = time.perf_counter()
    first_byte = 0.0
    received: list[tuple[float, dict]] = []
    buffer = b""
    with client.stream("POST", url, json={}) as response:
        for data in response.iter_raw():
            now = time.time()
            if not first_byte:
                first_byte = time.perf_counter() - started
            buffer += data
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                if frame.startswith(b"data: "):
                    received.append((now, json.loads(frame[6:])))
    return first_byte, received


def measure(name: str, base_url: str) -> dict[str, str]:
    figures: dict[str, str] = {}
    with httpx.Client(timeout=60) as client:
        for _ in range(20):
            stream_events(client, f"{base_url}/events?count=1")
        ttfb = [stream_events(client, f"{base_url}/events?count=0")[0] for _ in range(200)]
        figures["request to first byte"] = summary(ttfb)
        lags: list[float] = []
        for _ in range(5):
            _, events = stream_events(client, f"{base_url}/events?count=100&delay=0.005")
            lags += [at - float(e["content"]) for at, e in events if e["type"] == "chunk"]
        figures["yield to client receipt"] = summary(lags)
        count = 20000
        started = time.perf_counter()
        _, events = stream_events(client, f"{base_url}/events?count={count}")
        elapsed = time.perf_counter() - started
        assert sum(1 for _, e in events if e["type"] == "chunk") == count, "events were lost"
        figures["events per second"] = f"{count / elapsed:9.0f} events/s  ({count} events in {elapsed:.2f} s)"
    print(f"\n{name}")
    for key, value in figures.items():
        print(f"  {key:26} {value}")
    return figures


def cold_start(label: str, spawn: Callable[[], Callable[[], bool]], runs: int = 10) -> None:
    """Process start to ready for the first request, `runs` times."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        ready = spawn()
        while not ready():
            time.sleep(0.001)
        times.append(time.perf_counter() - started)
    print(f"  {'cold start ' + label:26} {summary(times)}")


def adapter_cold_start(handler: str, function_env: dict[str, str] | None = None) -> None:
    def spawn() -> Callable[[], bool]:
        spec = FunctionSpec(name="cold", handler=handler, concurrency=1, environment=dict(function_env or {}))
        environment = ExecutionEnvironment(spec, queue.Queue(), dict(os.environ))
        environment.server.start()
        environment._spawn()  # the worker alone, timed from here: no supervisor in the way
        spawned.append(environment)
        server = environment.server

        def ready() -> bool:
            if server.init_error is not None:  # init is over, but failed: no figure to report
                raise RuntimeError(f"{handler} failed its init: {server.init_error[:300]!r}")
            return server.polled.is_set()

        return ready

    spawned: list[ExecutionEnvironment] = []
    cold_start(handler.rsplit(".", 2)[0], spawn)
    for environment in spawned:
        environment.stop()


def reference_cold_start(port: int, env: dict[str, str]) -> None:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn() -> Callable[[], bool]:
        for process in processes:
            process.terminate()
            process.wait()
        processes.append(reference_server(port, env))

        def ready() -> bool:
            try:
                return httpx.post(f"http://127.0.0.1:{port}/events", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        return ready

    cold_start("reference", spawn)
    for process in processes:
        process.terminate()
        process.wait()


def figures_against_goals(
    turns: TurnFigures, cold: tuple[list[float], list[float]], floor: ColdFloor, imports: dict[str, float]
) -> None:
    before = [v * 1000 for v in turns.before_first_token]
    ours, reference = (statistics.median(side) * 1000 for side in cold)
    rows = [
        (
            "(a) first chunk - first token",
            f"{statistics.median(before):.1f} ms (p95 {percentile(before, 0.95):.0f})",
            f"first chunk {statistics.median(turns.first_chunks) * 1000:.0f} ms, router {ROUTER_S * 1000:.0f} ms",
            f"<= {FIRST_CHUNK_GOAL_MS:.0f} ms p50",
            statistics.median(before) <= FIRST_CHUNK_GOAL_MS,
        ),
        (
            "(b) cold request, first SSE byte",
            f"{ours:.0f} ms ({ours / reference:.2f}x)",
            f"FastAPI + uvicorn {reference:.0f} ms",
            f"<= {RATIO_GOAL:.2f}x",
            ours / reference <= RATIO_GOAL,
        ),
        (
            "(c) conversation handler import",
            f"{imports[CONVERSATION] * 1000:.1f} ms",
            f"libraries alone {imports[LIBRARIES] * 1000:.0f} ms; creator's {imports[CREATOR] * 1000:.0f} ms",
            f"<= {IMPORT_GOAL_MS:.0f} ms median",
            imports[CONVERSATION] * 1000 <= IMPORT_GOAL_MS,
        ),
    ]
    print("\nfigures against their goals")
    print(f"  {'figure':34} {'ours':22} {'peer':44} {'goal':16} met")
    for figure, value, peer, goal, met in rows:
        print(f"  {figure:34} {value:22} {peer:44} {goal:16} {'yes' if met else 'no'}")
    start, libraries = floor.interpreter_start * 1000, imports[LIBRARIES] * 1000
    server = floor.reference_server_import * 1000
    best = floor.best_ratio(imports[LIBRARIES])
    print(f"  (b) at best, for a handler with no code of its own that answered at once: {best:.2f}x")
    print(f"      (interpreter start {start:.0f} ms + the libraries {libraries:.0f} ms, over that + FastAPI and")
    print(f"      uvicorn's import {server:.0f} ms); (c) at best: the libraries alone, {libraries:.0f} ms")


def main() -> None:
    print("coach-stream bench: loopback HTTP on this machine; reproduce with `make bench`")
    definitions = (BENCH_FUNCTION,)
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(StackPorts.ephemeral(definitions), Path(state), definitions, concurrency=1).start()
        try:
            measure(
                "our adapter: Function URL front door -> Runtime API -> exec-wrapper worker",
                stack.function_urls["bench-stream"].url,
            )
        finally:
            stack.stop()
    deployed = synthesize(FUNCTIONS, {})
    # The reference app loads the conversation function's settings at import: placeholders pass them.
    reference_env = {**os.environ, **deployed.function(CONVERSATION).placeholder_environment()}
    port = free_port()
    reference = reference_server(port, reference_env)
    try:
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/events", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        measure(
            "reference: FastAPI + uvicorn StreamingResponse (no Lambda in between)",
            f"http://127.0.0.1:{port}",
        )
    finally:
        reference.terminate()
        reference.wait()
    print("\ncold start: process start to ready for the first request")
    adapter_cold_start("bench.handlers.handler")
    for name in (CONVERSATION, CREATOR):
        function = deployed.function(name)
        adapter_cold_start(function.handler, function.placeholder_environment())
    reference_cold_start(free_port(), reference_env)
    with turn_stack() as stack:
        turns = measure_turns(stack)
        cold = measure_cold_turns(stack)
    floor = measure_cold_floor()
    imports = measure_imports()
    figures_against_goals(turns, cold, floor, imports)
    managed_instances.main([])
    real_model.main([])  # skipped with a message until the real model is installed


if __name__ == "__main__":
    main()
