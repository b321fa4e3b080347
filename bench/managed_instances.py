"""32 concurrent conversation turns: one environment serving 32 at once (Managed Instances), on threads
(the adapter's default) and on forked processes (`RUNTIME_WORKERS=processes`), against 32 environments
serving one each (classic Lambda). Reproduce with `.venv/bin/python -m bench.managed_instances`.

All run the real conversation turn through the local stack and the same adapter; only
`AWS_LAMBDA_MAX_CONCURRENCY`, `RUNTIME_WORKERS` and the number of environments differ. Figures:

- memory: the conversation function's processes, summed at their peak during the turns: resident set
  (RSS, counts shared pages once per process) and proportional set (PSS, shares them out: the real cost);
- added latency per event: the model double writes each reply piece at a recorded time; the client (in
  processes of its own) notes when that piece arrives as a `chunk` event. The difference is what the
  function, its Runtime API and the Function URL add to each event;
- turns per second over the rounds, and errors (any turn without its `complete` event).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.conversation import CONVERSATION, conversation_of, percentile, turn_stack
from local.bedrock_double import Finish, RecordedRequest, Script, Text
from local.stack import LocalStack

STREAMS = 32
ROUNDS = 3
PIECES = 30
PIECE_S = 0.05
LATENCY_GOAL_MS = 5.0  # added latency per event, p95
MEMORY_GOAL = 0.25  # one environment's memory against 32 environments'


class LabelledModel:
    """Each reply piece names its turn and its index, so the client can find when it was written."""

    def __call__(self, request: RecordedRequest) -> Script:
        if any("isWorkoutLog" in text for text in request.system_texts):
            return Script.reply('{"isWorkoutLog": false, "complexity": "simple"}', delay=0.05)
        if request.streaming:
            label = request.last_user_text.split()[-1]
            pieces = [Text(f"{label}:{n} ", PIECE_S) for n in range(PIECES)]
            return Script((*pieces, Finish()))
        return Script.reply("[]", delay=0.01)


@dataclass
class Run:
    name: str
    rss_mb: float = 0.0
    pss_mb: float = 0.0
    latencies: list[float] = field(default_factory=list)
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    processes: int = 0


def stack_for(environments: int, per_environment: int, workers: str = "threads") -> AbstractContextManager[LocalStack]:
    return turn_stack(
        LabelledModel(),
        concurrency=environments,
        prewarmed=environments,
        environment_concurrency=per_environment,
        extra_environment={"RUNTIME_WORKERS": workers},
    )


def _group_memory_kb(groups: set[int]) -> tuple[int, int, int]:
    """RSS and PSS (kB) summed over every process in the given process groups, and how many there are."""
    rss = pss = count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) not in groups:
                continue
            rollup = (entry / "smaps_rollup").read_text()
        except (OSError, ValueError, IndexError):
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.endswith("kB")}
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        count += 1
    return rss, pss, count


CLIENT_PROCESSES = 4  # the clients run outside the stack's process, so its GIL does not delay their reads


def _read_turn(url: str, headers: dict[str, str], label: str) -> tuple[str, list[tuple[float, str]], bool]:
    """One turn from a client: each chunk line with its arrival (CLOCK_MONOTONIC, shared by every
    process on the machine), and whether the turn ended with `complete`."""
    received: list[tuple[float, str]] = []
    complete = False
    try:
        with httpx.Client(timeout=60, headers=headers) as client:
            body = {"userResponse": f"managed instances bench {label}"}
            with client.stream("POST", url, json=body) as response:
                for line in response.iter_lines():
                    now = time.monotonic()
                    if '"type":"chunk"' in line:
                        received.append((now, line))
                    complete = complete or '"type":"complete"' in line
    except httpx.HTTPError:
        complete = False
    return label, received, complete


def _read_turns(turns: list[tuple[str, dict[str, str], str]]) -> list[tuple[str, list[tuple[float, str]], bool]]:
    """A client process's share of a round, each turn on a thread of its own."""
    with ThreadPoolExecutor(max_workers=len(turns)) as pool:
        return list(pool.map(lambda turn: _read_turn(*turn), turns))


def _record(run: Run, stack: LocalStack, label: str, received: list[tuple[float, str]], complete: bool) -> None:
    """The turn's per-event latencies: each piece's arrival minus when the model double wrote it."""
    assert stack.bedrock is not None
    request = next((r for r in stack.bedrock.requests if r.streaming and r.last_user_text.endswith(label)), None)
    if request is not None:
        for arrived, line in received:
            for piece in line.split(f"{label}:")[1:]:
                index = int(piece.split(" ", 1)[0].rstrip('"}'))
                if index < len(request.delta_times):
                    run.latencies.append(arrived - request.delta_times[index])
    run.turns += 1
    run.errors += 0 if complete else 1


def measure(name: str, environments: int, per_environment: int, workers: str = "threads") -> Run:
    run = Run(name)
    with stack_for(environments, per_environment, workers) as stack:
        function = stack.functions[CONVERSATION]
        conversations = [conversation_of(stack, f"mi-user-{n}") for n in range(STREAMS)]
        base = stack.function_urls[CONVERSATION].url
        groups = {environment._process.pid for environment in function.environments if environment._process}
        peak = [0, 0, 0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.05):
                rss, pss, count = _group_memory_kb(groups)
                if pss > peak[1]:
                    peak[:] = [rss, pss, count]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("spawn")) as clients:
            for round_number in range(ROUNDS):
                turns = [
                    (base + conversation.path, conversation.headers, f"r{round_number}u{n}")
                    for n, conversation in enumerate(conversations)
                ]
                shares = [share for i in range(CLIENT_PROCESSES) if (share := turns[i::CLIENT_PROCESSES])]
                for results in clients.map(_read_turns, shares):
                    for label, received, complete in results:
                        _record(run, stack, label, received, complete)
        run.seconds = time.monotonic() - started
        sampling.set()
        sampler.join()
        run.rss_mb, run.pss_mb, run.processes = peak[0] / 1024, peak[1] / 1024, peak[2]
    return run


def report(runs: list[Run]) -> None:
    print(
        f"\n{STREAMS} concurrent conversation turns x {ROUNDS} rounds ({PIECES} pieces {PIECE_S * 1000:.0f} ms apart)"
    )
    header = f"  {'':34} {'processes':>9} {'RSS MB':>8} {'PSS MB':>8} {'event p50':>10} {'event p95':>10}"
    print(header + f" {'turns/s':>8} {'errors':>6}")
    for run in runs:
        p50 = statistics.median(run.latencies) * 1000 if run.latencies else float("nan")
        p95 = percentile(run.latencies, 0.95) * 1000 if run.latencies else float("nan")
        print(
            f"  {run.name:34} {run.processes:9d} {run.rss_mb:8.0f} {run.pss_mb:8.0f} {p50:8.2f}ms {p95:8.2f}ms"
            f" {run.turns / run.seconds:8.2f} {run.errors:6d}"
        )
    managed, forked, classic = runs[0], runs[1], runs[-1]
    ratio = managed.pss_mb / classic.pss_mb if classic.pss_mb else float("nan")
    forked_ratio = forked.pss_mb / classic.pss_mb if classic.pss_mb else float("nan")
    p95 = percentile(managed.latencies, 0.95) * 1000 if managed.latencies else float("nan")
    print(f"  memory (PSS), one environment / {STREAMS} environments: {ratio:.2f}  goal <= {MEMORY_GOAL:.2f}")
    print(f"  (RUNTIME_WORKERS=processes: {forked_ratio:.2f}, with {forked.errors} errors)")
    print(f"  added latency per event, one environment, p95: {p95:.2f} ms  goal <= {LATENCY_GOAL_MS:.0f} ms")
    print(f"  errors: {managed.errors} in one environment  goal 0")


def main(argv: list[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    runs = [
        measure(f"1 environment x {STREAMS}, threads", 1, STREAMS),
        measure(f"1 environment x {STREAMS}, processes", 1, STREAMS, workers="processes"),
        measure(f"{STREAMS} environments x 1 (classic)", STREAMS, 1),
    ]
    report(runs)
    return runs


if __name__ == "__main__":
    main()
