"""Print the streaming figures: through the local stack (our adapter) and through FastAPI + uvicorn.

Reproduce with `make bench` (or `.venv/bin/python -m bench`). Both servers run on this machine and
are measured by the same client over loopback HTTP.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.conversation import measure_imports, measure_turns
from functions.catalog import FUNCTIONS, FunctionDefinition
from local.deployed import synthesize
from local.functions import REPO_ROOT, FunctionSpec, LocalFunction
from local.processes import die_with_parent, free_port
from local.stack import LocalStack, StackPorts

BENCH_FUNCTION = FunctionDefinition(
    name="bench-stream",
    folder="",
    streaming=True,
    handler="bench.handlers.handler",
    local_port=None,
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


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
        function = LocalFunction(
            FunctionSpec(name="cold", handler=handler, concurrency=1, environment=dict(function_env or {}))
        )
        environment = function.environments[0]
        environment.server.start()
        environment._spawn()
        spawned.append(function)
        server = environment.server

        def ready() -> bool:
            if server.init_error is not None:  # init is over, but failed: no figure to report
                raise RuntimeError(f"{handler} failed its init: {server.init_error[:300]!r}")
            return server.polled.is_set()

        return ready

    spawned: list[LocalFunction] = []
    cold_start(handler.rsplit(".", 2)[0], spawn)
    for function in spawned:
        function.stop()


def reference_cold_start(port: int) -> None:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn() -> Callable[[], bool]:
        for process in processes:
            process.terminate()
            process.wait()
        processes.append(_uvicorn(port))

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


def _uvicorn(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        preexec_fn=die_with_parent,
    )


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
    port = free_port()
    reference = _uvicorn(port)
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
    deployed = synthesize(FUNCTIONS, {})
    for name in ("stream-coach-conversation", "stream-coach-creator-session"):
        function = deployed.function(name)
        adapter_cold_start(function.handler, function.placeholder_environment())
    reference_cold_start(free_port())
    measure_imports()
    measure_turns()


if __name__ == "__main__":
    main()
