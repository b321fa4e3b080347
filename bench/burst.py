"""A burst of new clients against the local stack, as Lambda would meet it: new environments start
(cold) until the function's concurrency limit, then 429. Reproduce with `.venv/bin/python -m bench.burst`.

It prints, for CLIENTS conversation turns sent at once to a stack with one warm environment: how many
were answered and how many throttled, how long the slowest waited for its headers, how many
environments started, and their init durations from the stack's REPORT lines; then whether 200 bare
connections opened at once are all accepted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.conversation import CONVERSATION, conversation_of, percentile
from local.stack import LocalStack, StackPorts

CLIENTS = 50
LIMIT = 20
CONNECTIONS = 200
_INIT = re.compile(r"Init Duration: ([0-9.]+) ms")


class _Reports(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.init_ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = _INIT.search(record.getMessage())
        if found:
            self.init_ms.append(float(found.group(1)))


def burst(stack: LocalStack) -> None:
    conversations = [conversation_of(stack, f"burst-user-{n}") for n in range(CLIENTS)]
    base = stack.function_urls[CONVERSATION].url
    heads: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def one(n: int) -> None:
        conversation = conversations[n]
        start.wait()
        began = time.monotonic()
        body = {"userResponse": f"burst {n}"}
        with httpx.stream(
            "POST", base + conversation.path, json=body, headers=conversation.headers, timeout=60
        ) as response:
            head = time.monotonic() - began
            response.read()
        with lock:
            heads.append(head)
            statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    function = stack.functions[CONVERSATION]
    print(f"\n{CLIENTS} turns at once, one warm environment, concurrency limit {LIMIT}")
    print(
        f"  answered 200: {statuses.count(200)}   throttled 429: {statuses.count(429)}   other: "
        f"{len(statuses) - statuses.count(200) - statuses.count(429)}"
    )
    print(
        f"  time to headers: p50 {statistics.median(heads) * 1000:.0f} ms, p95 "
        f"{percentile(heads, 0.95) * 1000:.0f} ms, slowest {max(heads) * 1000:.0f} ms"
    )
    print(f"  environments started: {len(function.environments)}")


def connections(stack: LocalStack) -> None:
    host, port = stack.function_urls[CONVERSATION].server_address[:2]
    opened, refused = [], 0
    for _ in range(CONNECTIONS):
        client = socket.socket()
        client.settimeout(2)
        try:
            client.connect((host, port))
            opened.append(client)
        except OSError:
            refused += 1
            client.close()
    answered = 0
    for client in opened:
        client.sendall(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    for client in opened:
        with contextlib.suppress(OSError):
            answered += client.recv(16).startswith(b"HTTP/1.1")
        client.close()
    print(
        f"\n{CONNECTIONS} connections opened at once: {len(opened)} accepted, {refused} refused or reset, "
        f"{answered} answered"
    )


def main() -> None:
    reports = _Reports()
    logging.getLogger("local.functions").addHandler(reports)
    logging.getLogger("local.functions").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(
            StackPorts.ephemeral(),
            Path(state),
            concurrency=LIMIT,
            prewarmed=1,
            model="double",
        ).start()
        try:
            burst(stack)
            connections(stack)
        finally:
            stack.stop()
    if reports.init_ms:
        inits = reports.init_ms
        print(
            f"  init duration of a new environment (REPORT lines, n={len(inits)}): p50 "
            f"{statistics.median(inits):.0f} ms, max {max(inits):.0f} ms"
        )


if __name__ == "__main__":
    main()
