"""The Runtime API loop that replaces the stock Python bootstrap (started by `exec-wrapper`).

It owns what `/var/runtime/bootstrap.py` did: `sys.path`, loading `_HANDLER`, init errors,
`_X_AMZN_TRACE_ID`, the context object, the root logger's output (`log_records`), and one invocation
at a time, forever (or, on Managed Instances, one at a time in each of N forked workers: `worker_pool`).
What it adds is the response stream offered in `current_stream`: a handler that
starts it streams, whatever its prelude; one that returns instead is answered buffered, as the stock
runtime would.

It exits 1 when init fails or the loop breaks, as the stock runtime does, and 69 (EX_UNAVAILABLE)
when the Runtime API stays unreachable past the client's reconnect budget; Lambda then starts a new
runtime.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shared.runtime import log_records
from shared.runtime.client import Invocation, RuntimeApiClient, RuntimeApiUnreachable
from shared.runtime.context import LambdaContext
from shared.runtime.stream import current_stream
from shared.runtime.worker_pool import max_concurrency, serve_in_threads, serve_in_workers, use_threads

logger = logging.getLogger("shared.runtime.bootstrap")

LambdaHandler = Callable[[Any, Any], Any]

EXIT_RUNTIME_API_UNREACHABLE = 69


class HandlerNotFound(Exception):
    """`_HANDLER` does not name a callable."""


def prepare_sys_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """The import path the stock runtime gives: the task root, then layers, then the runtime."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    front = [
        environ.get("LAMBDA_TASK_ROOT", os.getcwd()),
        f"/opt/python/lib/{version}/site-packages",
        "/opt/python",
    ]
    sys.path[:0] = [p for p in front if p not in sys.path]
    runtime_dir = environ.get("LAMBDA_RUNTIME_DIR")
    if runtime_dir and runtime_dir not in sys.path:
        sys.path.append(runtime_dir)


def load_handler(spec: str) -> LambdaHandler:
    """Import `module.function` as the stock runtime does (`path/to/module.function` works too)."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise HandlerNotFound(f"bad handler '{spec}': expected module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise HandlerNotFound(f"handler '{function_name}' missing on module '{module_name}'")
    return handler


@contextmanager
def init_objects_kept() -> Iterator[None]:
    """No garbage collection while the handler is imported and prepared, then what init made is frozen.

    An import makes objects, modules, classes, functions, models, and rarely garbage. Yet the collector
    runs all along, 120 young passes and a full one over some 55,000 objects for the conversation handler:
    about 38 ms of its 300 ms import. Frozen, the init's objects (what the process keeps for good) are
    left out of every later collection, and forked workers (Managed Instances' `processes`) do not
    copy the pages they sit in by touching them. The cost: the little garbage the import did make (some
    800 objects) is kept for good too. The collector is back on before the first invocation.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def run_invocation(
    client: RuntimeApiClient, handler: LambdaHandler, invocation: Invocation, *, streaming: bool = True
) -> None:
    """Call the handler once; streamed if it starts the stream, posted buffered otherwise.

    With `streaming=False` no stream is offered, which is exactly the stock runtime's behaviour.
    """
    log_records.set_invocation(invocation.request_id, invocation.tenant_id)
    if invocation.trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    context = LambdaContext.for_invocation(
        invocation.request_id,
        invocation.deadline_ms,
        invocation.function_arn,
        invocation.client_context,
        invocation.cognito_identity,
        invocation.tenant_id,
    )
    stream = client.open_stream(invocation.request_id)
    token = current_stream.set(stream if streaming else None)
    try:
        result = handler(invocation.event, context)
    except Exception as exc:
        logger.exception("invocation %s failed", invocation.request_id)
        if stream.started:
            stream.finish(exc)
        else:
            client.post_error(invocation.request_id, exc)
        return
    finally:
        current_stream.reset(token)
    if not stream.started:
        client.post_response(invocation.request_id, result)


def serve(client: RuntimeApiClient, handler: LambdaHandler, *, streaming: bool = True) -> None:
    """Invocations one after another until the Runtime API is gone or the loop itself breaks."""
    try:
        while True:
            run_invocation(client, handler, client.next_invocation(), streaming=streaming)
    except RuntimeApiUnreachable as exc:
        logger.error("giving up: %s", exc)
        sys.exit(EXIT_RUNTIME_API_UNREACHABLE)
    except Exception:
        logger.exception("the runtime loop failed")
        sys.exit(1)


def main(*, streaming: bool = True) -> None:
    prepare_sys_path()
    log_records.install(os.environ)
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    client = RuntimeApiClient(address)
    try:
        concurrency = max_concurrency(os.environ)
        workers = serve_in_threads if use_threads(os.environ) else serve_in_workers
        with init_objects_kept():
            handler = load_handler(os.environ["_HANDLER"])
            prepare = getattr(handler, "prepare_workers", None)
            if callable(prepare):  # at init, as Lambda's guidance has it: clients made outside the handler
                prepare()
    except Exception as exc:
        logger.exception("init failed")
        try:
            client.post_init_error(exc)
        except RuntimeApiUnreachable as unreachable:
            logger.error("giving up: %s", unreachable)
        sys.exit(1)
    if concurrency == 1:
        serve(client, handler, streaming=streaming)
        return
    client.close()  # each worker opens its own connection
    workers(concurrency, lambda: serve(RuntimeApiClient(address), handler, streaming=streaming))


if __name__ == "__main__":
    main()
