"""moto's DynamoDB with every item operation atomic, as DynamoDB's own are.

moto checks a condition and then writes, without a lock: two threads can both pass the same
`version = :v` check. Real DynamoDB never lets that happen, and our concurrency guarantees (one
claim per interview answer, idempotent retries) rest on it, so the double must not either.

moto also ignores a `TransactWriteItems` request's `ClientRequestToken`. DynamoDB remembers a
token for 10 minutes after its request completed: a repeat of the same request is answered with
success and not applied again (its conditions are not evaluated again), a repeat with other
parameters is `IdempotentParameterMismatchException`. botocore sends one token per call and the
same one on each of its retries, so a write that was applied but whose answer was lost (a read
timeout) is retried without failing its own conditions. Here the token is checked, the
transaction applied and the token remembered under the same lock. A request that failed leaves
no token behind: repeating it runs it again.

`python -m local.atomic_moto` runs moto's server with the lock in place, behind an IAM gate when
the environment names a policy set or a call log (`local.iam_gate`: `COACH_LOCAL_IAM_POLICIES`,
`COACH_LOCAL_AWS_CALLS`), and behind fault injection that tests switch on at run time
(`local.db_faults`).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

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
TOKEN_LIFETIME_SECONDS = 600.0  # how long DynamoDB remembers a ClientRequestToken after its request completed
_TOKENS_ATTRIBUTE = "_client_request_tokens"  # on the backend: moto's reset clears it with the tables


def _now() -> float:
    return time.monotonic()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return operation(*args, **kwargs)

    locked.__atomic__ = True  # type: ignore[attr-defined]
    return locked


class IdempotentParameterMismatch(DynamodbException):
    def __init__(self) -> None:
        super().__init__(
            ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
            message="The request uses the same client token as a previous, but non-identical request.",
        )


@dataclass(frozen=True)
class _Completed:
    """A transaction applied under a token: what it asked for, when it completed, what it answered."""

    request: str
    completed_at: float
    answer: object


def _remembered_tokens(backend: DynamoDBBackend) -> OrderedDict[str, _Completed]:
    """The backend's tokens, oldest first, with those past their lifetime forgotten."""
    tokens: OrderedDict[str, _Completed] = backend.__dict__.setdefault(_TOKENS_ATTRIBUTE, OrderedDict())
    horizon = _now() - TOKEN_LIFETIME_SECONDS
    while tokens and next(iter(tokens.values())).completed_at <= horizon:
        tokens.popitem(last=False)
    return tokens


def _once_per_token(transact: Callable[[DynamoHandler], ActionResult]) -> Callable[[DynamoHandler], ActionResult]:
    """`DynamoHandler.transact_write_items` with DynamoDB's `ClientRequestToken` semantics."""

    @functools.wraps(transact)
    def transact_write_items(handler: DynamoHandler) -> ActionResult:
        token = handler.body.get("ClientRequestToken")
        with _lock:
            if not token:
                return transact(handler)
            tokens = _remembered_tokens(handler.dynamodb_backend)
            request = json.dumps({k: v for k, v in handler.body.items() if k != "ClientRequestToken"}, sort_keys=True)
            earlier = tokens.get(token)
            if earlier is not None:
                if earlier.request != request:
                    raise IdempotentParameterMismatch()
                return ActionResult(copy.deepcopy(earlier.answer))
            result = transact(handler)
            tokens[token] = _Completed(request, _now(), copy.deepcopy(result.result))
            return result

    transact_write_items.__atomic__ = True  # type: ignore[attr-defined]
    return transact_write_items


def make_dynamodb_atomic() -> None:
    """Idempotent: wraps each item operation of moto's DynamoDB backend in one process-wide lock, and
    makes `TransactWriteItems` honour its `ClientRequestToken` under the same lock."""
    for name in _OPERATIONS:
        operation = getattr(DynamoDBBackend, name)
        if not getattr(operation, "__atomic__", False):
            setattr(DynamoDBBackend, name, _atomic(operation))
    if not getattr(DynamoHandler.transact_write_items, "__atomic__", False):
        DynamoHandler.transact_write_items = _once_per_token(DynamoHandler.transact_write_items)  # type: ignore[method-assign]


def application(environ: dict[str, str] | None = None) -> WsgiApp:
    """moto's server app (the one `moto_server` runs), atomic, behind the IAM gate the environment names
    (if any), behind fault injection (off until a test switches it on)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from local.db_faults import FaultInjector
    from local.iam_gate import IamGate

    make_dynamodb_atomic()
    app = DomainDispatcherApplication(create_backend_app)
    gate = IamGate.from_environment(os.environ if environ is None else environ)
    return FaultInjector(gate.wsgi(app) if gate is not None else app)


def main(argv: Sequence[str] | None = None) -> None:
    """moto's server (the same app and request handler as `moto_server`), atomic, maybe gated, faults ready."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(prog="python -m local.atomic_moto")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(args.host, args.port, application(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
