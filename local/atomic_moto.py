"""moto's DynamoDB with every item operation atomic, as DynamoDB's own are.

moto checks a condition and then writes, without a lock: two threads can both pass the same
`version = :v` check. Real DynamoDB never lets that happen, and our concurrency guarantees (one
claim per interview answer, idempotent retries) rest on it, so the double must not either.
`python -m local.atomic_moto` runs moto's server with the lock in place.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
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


if __name__ == "__main__":
    from moto.server import main

    make_dynamodb_atomic()
    main()
