"""Many invocations at once in one execution environment (Lambda Managed Instances).

On Managed Instances Lambda sets `AWS_LAMBDA_MAX_CONCURRENCY` to N and accepts N concurrent
`/invocation/next` polls and responses from one environment. Each of our N workers is a whole runtime
loop with its own Runtime API connection, serving one invocation at a time. Two ways to run them,
chosen by `RUNTIME_WORKERS`:

- `threads` (the default): N threads in the process that imported the handler. A streamed turn
  mostly waits on the model, so the GIL costs little, and the handler's modules are in memory once:
  measured with 32 concurrent turns (`make bench`), about 70 MB against 1,280 MB for forked workers and
  1,865 MB for 32 single-turn environments. What one invocation must not see of another's is made
  per invocation: `_X_AMZN_TRACE_ID` (`invocation_environ`), the log records' request id, the
  response stream (`current_stream`), Powertools' Logger keys and metrics (`shared.observability`);
  the turn's thread pool hands each task its caller's context. The handler must be thread safe.
- `processes`: the handler is imported once, then N workers are forked from it, which is what the
  stock Python runtime (awslambdaric 4) does with N processes: no handler needs thread safety, but
  each worker holds its own copy of nearly everything it touches (copy-on-write pages are dirtied by
  reference counting). A worker that dies is re-forked; the others go on, as on Managed Instances.

A handler may carry `prepare_workers`, called once before the workers start: what it builds (SDK
clients and the service models they load) is then shared (threads) or inherited (forks) instead of
built in each. It must leave no connection open: a socket shared across a fork would carry two workers'
requests. Where Lambda names a log socket (`_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET`, on Managed
Instances), each forked worker connects its stdout and stderr to it, as awslambdaric's workers do;
threads share the process's. Managed Instances take JSON logs only, one record a line.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping

from shared.runtime.invocation_environ import install as install_invocation_environ

logger = logging.getLogger(__name__)

MAX_CONCURRENCY_VARIABLE = "AWS_LAMBDA_MAX_CONCURRENCY"
WORKERS_VARIABLE = "RUNTIME_WORKERS"
LOG_SOCKET_VARIABLE = "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET"
_RESPAWN_PAUSE = 0.1  # a worker that dies at once is not re-forked in a tight loop


def max_concurrency(environ: Mapping[str, str]) -> int:
    """How many invocations this environment serves at once: 1 unless Lambda says more."""
    text = environ.get(MAX_CONCURRENCY_VARIABLE, "").strip()
    if not text:
        return 1
    try:
        value = int(text)
    except ValueError:
        logger.warning("%s=%r is not a number; serving one invocation at a time", MAX_CONCURRENCY_VARIABLE, text)
        return 1
    return max(1, value)


def use_threads(environ: Mapping[str, str]) -> bool:
    """Threads unless `RUNTIME_WORKERS=processes`; anything else is refused, so a typo is seen."""
    model = environ.get(WORKERS_VARIABLE, "threads").strip().lower() or "threads"
    if model not in ("threads", "processes"):
        raise ValueError(f"{WORKERS_VARIABLE} must be threads or processes, not {model!r}")
    return model == "threads"


def serve_in_threads(count: int, serve: Callable[[], None]) -> None:
    """Run `count` loops on threads of this process; when one ends (its loop gave up), the process
    ends with it, with its status, and Lambda starts the environment anew."""
    install_invocation_environ()
    ended: queue.Queue[int] = queue.Queue()

    def worker() -> None:
        ended.put(_exit_status(serve))

    for index in range(count):
        threading.Thread(target=worker, name=f"invocations-{index}", daemon=True).start()
    status = ended.get()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def connect_output(socket_path: str) -> None:
    """Point this process's stdout and stderr at Lambda's log socket: one connection each."""
    for fd in (sys.stdout.fileno(), sys.stderr.fileno()):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(socket_path)
            os.dup2(connection.fileno(), fd)


def serve_in_workers(count: int, serve: Callable[[], None], environ: Mapping[str, str] = os.environ) -> None:
    """Fork `count` workers that each run `serve` (one invocation at a time, forever); keep `count` alive.

    Returns only when this process is asked to stop (SIGTERM or SIGINT); the workers are stopped with it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    socket_path = environ.get(LOG_SOCKET_VARIABLE, "")
    workers = {_fork(serve, socket_path): index for index in range(count)}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            _signal(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            index = workers.pop(pid, None)
            if index is None or stopping:
                continue
            logger.error("worker %d (pid %d) ended with status %d; starting another", index, pid, status)
            time.sleep(_RESPAWN_PAUSE)
            workers[_fork(serve, socket_path)] = index
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _fork(serve: Callable[[], None], socket_path: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def worker() -> None:
        if socket_path:
            connect_output(socket_path)
        serve()

    status = _exit_status(worker)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_status(run: Callable[[], None]) -> int:
    """What a worker's end means for its process: 0 when it returned, its code when it exited, else 1."""
    try:
        run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logger.exception("worker failed")
        return 1
    return 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
