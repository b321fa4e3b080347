"""moto's DynamoDB with every item operation atomic, as DynamoDB's own are.

moto checks a condition and then writes, without a lock: two threads can both pass the same
`version = :v` check. Real DynamoDB never lets that happen, and our concurrency guarantees (one
claim per interview answer, idempotent retries) rest on it, so the double must not either.
`python -m local.atomic_moto` runs moto's server with the lock in place, behind an IAM gate when
the environment names a policy set or a call log (`local.iam_gate`: `COACH_LOCAL_IAM_POLICIES`,
`COACH_LOCAL_AWS_CALLS`).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
    "execute_transaction",
)
_lock = threading.RLock()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return operation(*args, **kwargs)

    locked.__atomic__ = True  # type: ignore[attr-defined]
    return locked


def make_dynamodb_atomic() -> None:
    """Idempotent: wraps each item operation of moto's DynamoDB backend in one process-wide lock."""
    for name in _OPERATIONS:
        operation = getattr(DynamoDBBackend, name)
        if not getattr(operation, "__atomic__", False):
            setattr(DynamoDBBackend, name, _atomic(operation))


def main(argv: Sequence[str] | None = None) -> None:
    """moto's server (the same app and request handler as `moto_server`), atomic and maybe gated."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    from local.iam_gate import IamGate

    parser = argparse.ArgumentParser(prog="python -m local.atomic_moto")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    make_dynamodb_atomic()
    app = DomainDispatcherApplication(create_backend_app)
    gate = IamGate.from_environment()
    served = gate.wsgi(app) if gate is not None else app
    run_simple(args.host, args.port, served, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
