"""Many invocations at once in one execution environment (Lambda Managed Instances).

On Managed Instances Lambda sets `AWS_LAMBDA_MAX_CONCURRENCY` to N and accepts N concurrent
`/invocation/next` polls and responses from one environment. The stock Python runtime (awslambdaric 4)
answers with N processes, each a whole runtime serving one invocation at a time, so a handler written
for classic Lambda needs no thread safety: its module globals, `_X_AMZN_TRACE_ID`, the context
object, Powertools' Logger and Metrics state are each one invocation's alone. We do the same, with one
difference: the handler is imported once, then the workers are forked from that process, so the
imported modules' pages are shared copy-on-write instead of being loaded N times (`gc.freeze` keeps
the collector from dirtying them). A worker that dies is replaced by a fresh fork; the others go on
(as on Managed Instances, where one crashed worker does not end the environment).

A handler may carry `prepare_workers`, called once before the fork: what it builds (SDK clients and
the service models they load) is then shared by every worker instead of built in each. It must open
no connection: a socket shared across a fork would carry two workers' requests.

Each worker opens its own Runtime API connection. Where Lambda names a log socket
(`_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET`, on Managed Instances), each worker connects its stdout
and stderr to it, as awslambdaric's workers do; Managed Instances take JSON logs only, one record a line.

Threads were the other choice: measured in `make bench`, see the README. They would share every global
of the handler between concurrent invocations, which is what no Lambda handler is written for.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

MAX_CONCURRENCY_VARIABLE = "AWS_LAMBDA_MAX_CONCURRENCY"
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
    status = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if socket_path:
            connect_output(socket_path)
        serve()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logger.exception("worker failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return 0  # never reached: the child leaves through os._exit


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
