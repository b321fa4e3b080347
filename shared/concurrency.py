"""One thread pool per container for a turn's concurrent I/O: the pre-stream reads, the router, the
first token. Threads, not asyncio: boto3 and our Runtime API client block, and a turn has few calls.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="turn-io")


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
