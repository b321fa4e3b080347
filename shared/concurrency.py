"""One thread pool per container for a turn's concurrent I/O: the pre-stream reads, the router, the
first token. Threads, not asyncio: boto3 and our Runtime API client block, and a turn has few calls.

Each task runs in a copy of its caller's context, so what is per invocation (the trace id, the log
keys, the metrics being gathered) follows it into the pool. The pool grows with the invocations an
environment serves at once (`AWS_LAMBDA_MAX_CONCURRENCY` on Managed Instances).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
_PER_INVOCATION = 4  # a turn's concurrent calls: reads, router, reply


class ContextPool(ThreadPoolExecutor):
    """A thread pool whose tasks see their submitter's context variables."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def pool_size() -> int:
    """The pool's threads: a few per invocation an environment serves at once. An SDK client shared by them
    keeps as many connections (`shared.aws_clients`), so no thread's call opens one that is then dropped."""
    try:
        invocations = max(1, int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1")))
    except ValueError:
        invocations = 1
    return 12 + _PER_INVOCATION * invocations


WORKERS = ContextPool(max_workers=pool_size(), thread_name_prefix="turn-io")


def gather(*calls: Callable[[], Any]) -> list[Any]:
    """The calls' results, in order, run concurrently (the first on this thread).

    Every call finishes before this returns or raises, so nothing keeps running behind a failure;
    the first call's failure, in the order given, is the one raised.
    """
    others: list[Future[Any]] = [WORKERS.submit(call) for call in calls[1:]]
    try:
        first = calls[0]()
    finally:
        wait(others)
    return [first, *(future.result() for future in others)]
