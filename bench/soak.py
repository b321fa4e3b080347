"""Many conversation turns through the local stack, and what they cost the local DynamoDB over time.

The local DynamoDB (`local/atomic_moto.py`) lives as long as `make dev` does, so what it keeps per
request must not grow with the number of requests, and a write must not get slower as the table
fills. Each turn goes through the conversation function's Function URL with the Bedrock double
answering at once, and the table's stream feeds the post-turn function as it does in `make dev`.
After each turn one `TransactWriteItems` on a bench-owned item is timed: the store's own kind of write,
measured apart from the function's work. Every `--every` turns a row shows the DynamoDB server
process's resident memory and the p50/p95 of the turns and of those writes since the previous row.

Run with `.venv/bin/python -m bench.soak --turns 1000`. Loopback only; stops after `--turns`, or
earlier past `--max-minutes` or once the server's memory passes `--max-rss-mib`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from bench.conversation import CONVERSATION, conversation_of, percentile
from local.stack import TABLE_NAME, LocalStack, StackPorts

MODEL_SPEED = 1000.0  # the double's reply pacing divided by this: the turns measure our path, not a model
RATE_LIMIT = "1000000"  # per user and minute: the soak posts far faster than the deployed limit allows


@dataclass(frozen=True)
class Row:
    """The figures of one window of turns."""

    turns: int
    rss_mib: float
    turn_p50_ms: float
    turn_p95_ms: float
    write_p50_ms: float
    write_p95_ms: float
    failed: int


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (what the OS sees, whatever Python's allocator thinks)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """This process's stdout and stderr, and so the stack's processes' (they inherit them), go to `log`;
    yields the terminal's stdout, for the table."""
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    saved_err = os.dup(2)
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(terminal.fileno(), 1)
        os.dup2(saved_err, 2)
        os.close(saved_err)
        terminal.close()


@contextmanager
def soak_stack() -> Iterator[LocalStack]:
    """The local stack, one worker per function, the Bedrock double answering without delay."""
    with tempfile.TemporaryDirectory() as state:
        deploy_environ = {**os.environ, "RATE_LIMIT_PER_MINUTE": RATE_LIMIT}
        stack = LocalStack(
            StackPorts.ephemeral(),
            Path(state),
            concurrency=1,
            model="double",
            model_speed=MODEL_SPEED,
            deploy_environ=deploy_environ,
            overrides_file=None,
        )
        try:
            yield stack.start()
        finally:
            stack.stop()


def turn(client: httpx.Client, url: str, text: str) -> str:
    """One turn, read to its end: "" when it completed, else why not (a failed turn is counted, it does
    not end the soak)."""
    try:
        with client.stream("POST", url, json={"userResponse": text}) as response:
            if response.status_code != 200:
                response.read()
                return f"HTTP {response.status_code}"
            events = [line for line in response.iter_lines() if line.startswith("data: ")]
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if any('"type":"complete"' in event for event in events):
        return ""
    return f"ended with {events[-1][6:120]}" if events else "no events"


def timed_write(dynamodb: Any, n: int) -> float:
    """One transaction on the bench's own item (a counter, with a request token as the store sends)."""
    started = time.perf_counter()
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE_NAME,
                    "Key": {"pk": {"S": "BENCH#soak"}, "sk": {"S": "COUNTER"}},
                    "UpdateExpression": "ADD turns :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }
        ],
        ClientRequestToken=f"soak-{n}-{uuid.uuid4().hex[:16]}",
    )
    return time.perf_counter() - started


@dataclass(frozen=True)
class Bounds:
    """When the soak stops early: a leaking server must not take the machine down with it."""

    deadline: float  # time.monotonic()
    max_rss_mib: float


def soak(stack: LocalStack, out: TextIO, turns: int, every: int, per_conversation: int, bounds: Bounds) -> list[Row]:
    """Turns in conversations of `per_conversation` turns each, each conversation another user's; a row
    to `out` every `every` turns."""
    assert stack.dynamodb._process is not None, "the stack started its DynamoDB"
    pid = stack.dynamodb._process.pid
    dynamodb = stack.dynamodb.client()
    base = stack.function_urls[CONVERSATION].url
    rows = [Row(0, rss_mib(pid), 0.0, 0.0, 0.0, 0.0, 0)]
    print_header(rows[0], out)
    turn_times: list[float] = []
    write_times: list[float] = []
    failed = 0
    failures: Counter[str] = Counter()
    client: httpx.Client | None = None
    url = ""
    try:
        for n in range(1, turns + 1):
            if (n - 1) % per_conversation == 0:
                if client is not None:
                    client.close()
                conversation = conversation_of(stack, f"soak-user-{(n - 1) // per_conversation}")
                client = httpx.Client(timeout=60, headers=conversation.headers)
                url = base + conversation.path
            assert client is not None
            started = time.perf_counter()
            failure = turn(client, url, f"soak turn {n}")
            if failure:
                failed += 1
                failures[failure] += 1
            turn_times.append(time.perf_counter() - started)
            write_times.append(timed_write(dynamodb, n))
            rss = rss_mib(pid)
            stop = "past --max-minutes" if time.monotonic() > bounds.deadline else ""
            stop = stop or (f"RSS over --max-rss-mib {bounds.max_rss_mib:.0f}" if rss > bounds.max_rss_mib else "")
            if n % every == 0 or n == turns or stop:
                rows.append(window(n, rss, turn_times, write_times, failed))
                print_row(rows[-1], out)
                turn_times, write_times, failed = [], [], 0
            if stop:
                print(f"  stopped after {n} turns: {stop}", file=out)
                break
    finally:
        if client is not None:
            client.close()
    for failure, count in failures.most_common():
        print(f"  failed turns: {count} x {failure}", file=out)
    return rows


def window(n: int, rss: float, turn_times: list[float], write_times: list[float], failed: int) -> Row:
    turns_ms = [t * 1000 for t in turn_times]
    writes_ms = [t * 1000 for t in write_times]
    return Row(
        n,
        rss,
        statistics.median(turns_ms),
        percentile(turns_ms, 0.95),
        statistics.median(writes_ms),
        percentile(writes_ms, 0.95),
        failed,
    )


_COLUMNS = (("turns", 6), ("dynamodb RSS", 13), ("turn p50", 9), ("turn p95", 9), ("write p50", 9), ("write p95", 9))


def print_header(start: Row, out: TextIO) -> None:
    print("  " + " ".join(f"{name:>{width}}" for name, width in _COLUMNS) + "  failed turns", file=out)
    print(f"  {start.turns:6d} {start.rss_mib:9.1f} MiB", file=out)


def print_row(row: Row, out: TextIO) -> None:
    print(
        f"  {row.turns:6d} {row.rss_mib:9.1f} MiB {row.turn_p50_ms:6.1f} ms {row.turn_p95_ms:6.1f} ms"
        f" {row.write_p50_ms:6.1f} ms {row.write_p95_ms:6.1f} ms  {row.failed}",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="turns per row")
    parser.add_argument("--per-conversation", type=int, default=20, help="turns before the next user's conversation")
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--max-rss-mib", type=float, default=4096.0, help="stop once the DynamoDB server is this big")
    parser.add_argument("--log", type=Path, default=None, help="where the stack's own output goes (a temp file)")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.every < 1 or args.per_conversation < 1:
        parser.error("--turns, --every and --per-conversation must be at least 1")
    log = args.log or Path(tempfile.mkstemp(prefix="coach-soak-", suffix=".log")[1])
    print(f"coach-stream soak: {args.turns} conversation turns through the local stack (loopback)")
    print(f"  {args.per_conversation} turns per conversation; write = one TransactWriteItems timed after each turn")
    print(f"  the stack's output: {log}", flush=True)
    started = time.monotonic()
    with output_to(log) as out, soak_stack() as stack:
        print(f"  stack up in {time.monotonic() - started:.1f} s", file=out)
        bounds = Bounds(started + args.max_minutes * 60, args.max_rss_mib)
        soak(stack, out, args.turns, args.every, args.per_conversation, bounds)
    print(f"  {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
