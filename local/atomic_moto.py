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

moto rolls a failed `TransactWriteItems` back by deep-copying every table the transaction names before
it starts, and putting the copies in place of the tables when it fails. A write then costs as much as
the whole table (and its stream); and since moto registers every model object it ever makes (for its
dashboard) until a reset, every copy stays in memory for good. A failed transaction also leaves the
table's stream readers on the old table's shard, which gets no new records. Here a transaction instead
remembers only the items it touches (and how long each stream was), and puts those back if it fails:
the same all-or-nothing, at the cost of the transaction's own items. The DynamoDB models are made
without that registration, and the stream forgets what DynamoDB Streams forgets: records after 24
hours, shard iterators 15 minutes after they were handed out (moto keeps both forever).

moto answers a `Query` by walking and sorting every item of the table, then keeping the partition asked
for: a query gets slower with every item anyone writes. Here moto's own query code runs on a view of the
table that holds only the partition asked for (or, for a global secondary index, every item unsorted, as
moto sorts what matches by the index's keys anyway), so it answers the same at the cost of that partition.

moto never applies Time to Live, so expired items (rate-limit windows, outbox items) pile up for as long
as the server runs. Here a sweeper deletes them (`delete_expired`) as DynamoDB's TTL does: each table
with TTL enabled loses the items whose TTL attribute is a number of epoch seconds in the past (but not
more than five years past), and each deletion is a `REMOVE` stream record whose `userIdentity` names
DynamoDB's service principal. DynamoDB does this within a few days; the server does it every minute
(`--ttl-sweep-seconds`, or `COACH_LOCAL_TTL_SWEEP_SECONDS`; 0 turns it off).

`python -m local.atomic_moto` runs moto's server with the lock in place, behind an IAM gate when
the environment names a policy set or a call log (`local.iam_gate`: `COACH_LOCAL_IAM_POLICIES`,
`COACH_LOCAL_AWS_CALLS`), and behind fault injection that tests switch on at run time
(`local.db_faults`).
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from moto.core.common_models import BaseModel
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    ConditionalCheckFailed,
    DynamodbException,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend

from local.lean_moto import make_moto_lean

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
logger = logging.getLogger(__name__)

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
STREAM_RETENTION_SECONDS = 24 * 3600.0  # how long DynamoDB Streams keeps a record
SHARD_ITERATOR_LIFETIME_SECONDS = 15 * 60.0  # a shard iterator expires this long after it was handed out
_TOKENS_ATTRIBUTE = "_client_request_tokens"  # on the backend: moto's reset clears it with the tables
_ITERATORS_ATTRIBUTE = "_shard_iterators_issued"  # on the streams backend, likewise
_ADDED_AT_ATTRIBUTE = "_added_at"  # on a stream record: when it was written, by `_now`
_MODEL_PACKAGES = ("moto.dynamodb.", "moto.dynamodbstreams.")
TTL_SWEEP_SECONDS = 60.0  # how often expired items are deleted here (DynamoDB: typically within two days)
TTL_SWEEP_ENV = "COACH_LOCAL_TTL_SWEEP_SECONDS"
TTL_HORIZON_SECONDS = 5 * 365 * 24 * 3600.0  # TTL ignores expiry times further in the past than this
TTL_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}  # GetRecords' `Identity` shape


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


# --- transactions rolled back item by item ---------------------------------------------------------

Cancellation = tuple[str, str, dict[str, Any] | None] | tuple[None, None, None]


@dataclass
class _Undo:
    """What a transaction changed so far, to put back if it fails: each item it writes as it was
    before, and the next sequence number of each stream it writes to."""

    items: list[tuple[Table, DynamoType, DynamoType | None, Item | None]] = field(default_factory=list)
    streams: dict[int, tuple[StreamShard, int]] = field(default_factory=dict)

    def remember(self, backend: DynamoDBBackend, table_name: str, key: dict[str, Any]) -> None:
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        before = _stored(table, hash_key, range_key)
        self.items.append((table, hash_key, range_key, copy.deepcopy(before)))  # an update changes it in place
        shard = table.stream_shard
        if shard is not None and id(shard) not in self.streams:
            self.streams[id(shard)] = (shard, shard.starting_sequence_number + len(shard.items))

    def roll_back(self) -> None:
        for table, hash_key, range_key, before in reversed(self.items):
            _restore(table, hash_key, range_key, before)
        for shard, next_sequence in self.streams.values():
            # A sequence number is the shard's first plus the record's place: the next write reuses theirs.
            del shard.items[max(0, next_sequence - shard.starting_sequence_number) :]


def _stored(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    stored = table.items.get(hash_key)
    if range_key is None or stored is None:
        return stored
    return stored.get(range_key)  # type: ignore[no-any-return]


def _restore(table: Table, hash_key: DynamoType, range_key: DynamoType | None, before: Item | None) -> None:
    if range_key is None:
        if before is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = before
        return
    if before is not None:
        table.items[hash_key][range_key] = before
        return
    collection = table.items.get(hash_key)
    if collection is not None:
        collection.pop(range_key, None)
        if not collection:
            del table.items[hash_key]


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """`DynamoDBBackend.transact_write_items` with the same checks, order and errors, but undone item by
    item: moto's own copies each table the transaction names, whole, before every transaction."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _Undo()
    targets: set[tuple[str, str]] = set()
    try:
        outcomes = [_transact_one(backend, item, targets, undo) for item in transact_items]
    except BaseException:
        undo.roll_back()
        raise
    if any(code is not None for code, _, _ in outcomes):
        undo.roll_back()
        raise TransactionCanceledException(outcomes)


def _transact_one(
    backend: DynamoDBBackend, item: dict[str, Any], targets: set[tuple[str, str]], undo: _Undo
) -> Cancellation:
    """One action of a transaction, applied; its cancellation reason, all None when it succeeded."""
    if len(item) > 1:
        raise TransactWriteSingleOpException
    original_item: dict[str, Any] | None = None
    try:
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        condition_expression = op.get("ConditionExpression")
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        if op_type == "Put":
            table = backend.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        target = (str(table_name), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = backend.get_item(table_name, key)
        if condition_expression is not None and not _holds(condition_expression, names, values, current):
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                original_item = current.to_json()["Attributes"]
            raise ConditionalCheckFailed(item=original_item)
        if op_type == "ConditionCheck":
            return (None, None, None)
        undo.remember(backend, table_name, key)
        condition = {
            "condition_expression": condition_expression,
            "expression_attribute_names": names,
            "expression_attribute_values": values,
        }
        if op_type == "Put":
            backend.put_item(table_name, op["Item"], **condition)
        elif op_type == "Delete":
            backend.delete_item(table_name, key, **condition)
        else:
            backend.update_item(table_name, key, update_expression=op["UpdateExpression"], **condition)
        return (None, None, None)
    except (MultipleTransactionsException, MockValidationException):
        raise
    except ConditionalCheckFailed as failed:
        return ("ConditionalCheckFailed", str(failed.message), original_item)
    except Exception as failed:
        return (type(failed).__name__, str(failed), original_item)


def _holds(condition: str, names: dict[str, str] | None, values: dict[str, Any] | None, item: Item | None) -> bool:
    return bool(get_filter_expression(condition, names, values).expr(item))


# --- queries that read one partition ---------------------------------------------------------------


def _every_item(table: Table) -> list[Item]:
    """The table's items in no particular order (moto's `all_items` sorts them all first)."""
    if table.range_key_attr is None:
        return list(table.items.values())
    return [item for partition in table.items.values() for item in partition.values()]


def _view(table: Table, **changed: Any) -> Table:
    """The table with some attributes replaced, sharing the rest: what a read may be shown of it."""
    view = object.__new__(type(table))
    view.__dict__.update(table.__dict__, **changed)
    return view


def _query_view(
    table: Table,
    hash_key: DynamoType | None,
    index_name: str | None,
    hash_conditions: Sequence[tuple[str, DynamoType]] | None,
) -> Table:
    """What moto's `Table.query` needs to see of the table to give its answer: one partition for a query
    of the table or of an index keyed by the table's partition key, every item unsorted for a global
    index (moto sorts the matches by a key that includes the table's, so their order before is moot)."""
    key = hash_key
    if index_name is not None:
        index = next((i for i in table.all_indexes() if i.name == index_name), None)
        if index is None:
            return table  # moto answers with its own error
        index_hash = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        conditions = list(hash_conditions or ())
        if index_hash != [table.hash_key_attr] or [name for name, _ in conditions] != index_hash:
            return _view(table, all_items=functools.partial(_every_item, table))
        key = conditions[0][1]
    if key is None:
        return table
    partition = table.items.get(key)  # not `[key]`: the table's defaultdict would keep an empty partition
    return _view(table, items={} if partition is None else {key: partition})


def _partitioned(query: Callable[..., Any]) -> Callable[..., Any]:
    """`Table.query` that runs moto's own query on `_query_view`: same answer, without the whole table."""
    signature = inspect.signature(query)

    @functools.wraps(query)
    def query_partition(table: Table, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(table, *args, **kwargs).arguments
        view = _query_view(table, asked.get("hash_key"), asked.get("index_name"), asked.get("hash_key_conditions"))
        return query(view, *args, **kwargs)

    query_partition.__partitioned__ = True  # type: ignore[attr-defined]
    return query_partition


# --- Time to Live ----------------------------------------------------------------------------------


def _expired(item: Item, attribute: str, now: float) -> bool:
    """DynamoDB's test: the TTL attribute is a number of epoch seconds before now, but not five years before
    (any other value, or none, and the item stays)."""
    value = item.attrs.get(attribute)
    if value is None or value.type != "N":
        return False
    try:
        expires = float(value.value)
    except (TypeError, ValueError):
        return False
    return now - TTL_HORIZON_SECONDS <= expires < now


def _delete_expired_items(table: Table, now: float) -> int:
    """Under the writes' lock: a sweep is a series of deletes that no write or transaction may interleave."""
    with _lock:
        attribute = table.ttl.get("AttributeName")
        if table.ttl.get("TimeToLiveStatus") != "ENABLED" or not attribute:
            return 0
        expired = [item for item in _every_item(table) if _expired(item, attribute, now)]
        for item in expired:
            table.delete_item(item.hash_key, item.range_key)
            shard = table.stream_shard
            if shard is not None and shard.items:
                shard.items[-1].record["userIdentity"] = dict(TTL_IDENTITY)
        if table.range_key_attr is not None:
            # moto's get_item leaves an empty partition behind for each one asked for that is not there
            for key in [key for key, partition in table.items.items() if not partition]:
                del table.items[key]
        return len(expired)


def delete_expired(now: float | None = None) -> int:
    """Deletes the expired items of every table with TTL enabled, as DynamoDB's TTL does, each one a
    `REMOVE` stream record by DynamoDB's service principal; returns how many it deleted."""
    moment = time.time() if now is None else now
    backends = [backend for regions in list(dynamodb_backends.values()) for backend in list(regions.values())]
    return sum(_delete_expired_items(table, moment) for backend in backends for table in list(backend.tables.values()))


class TtlSweeper:
    """`delete_expired` every `interval` seconds, on a thread of the server's process, for as long as it runs."""

    def __init__(self, interval: float = TTL_SWEEP_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ttl-sweeper", daemon=True)

    def start(self) -> TtlSweeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                deleted = delete_expired(self.clock())
            except Exception:  # a failed sweep must not end the sweeping: the next one may succeed
                logger.exception("deleting expired items failed")
                continue
            if deleted:
                logger.info("deleted %d expired items", deleted)


# --- what moto would otherwise keep for good -------------------------------------------------------


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """`BaseModel.__new__` without adding the instance to the class's `instances_tracked`, which moto
    keeps (for its dashboard) until a reset: every item, query result copy and stream record ever made."""
    return object.__new__(cls)


_UNTRACKED_NEW = staticmethod(_untracked_new)


def _subclasses(model: type) -> Iterator[type]:
    for subclass in model.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _stop_tracking_models() -> None:
    """The DynamoDB and DynamoDB Streams models, made without registration from now on (a reset of moto
    empties the lists but not the classes' `__new__`), and what they registered so far let go."""
    for model in _subclasses(BaseModel):
        if model.__module__.startswith(_MODEL_PACKAGES):
            if model.__dict__.get("__new__") is not _UNTRACKED_NEW:
                model.__new__ = _UNTRACKED_NEW  # type: ignore[assignment]
            model.instances_tracked = []  # type: ignore[attr-defined]


def _trim(shard: StreamShard) -> None:
    """Drops the records older than DynamoDB Streams keeps, and moves the shard's first sequence number
    past them, so that the others keep theirs."""
    horizon = _now() - STREAM_RETENTION_SECONDS
    stale = 0
    for record in shard.items:
        if getattr(record, _ADDED_AT_ATTRIBUTE, horizon + 1) > horizon:
            break
        stale += 1
    if stale:
        del shard.items[:stale]
        shard.starting_sequence_number += stale


def _retained(add: Callable[..., None]) -> Callable[..., None]:
    """`StreamShard.add` that dates the record it adds and forgets the expired ones."""

    @functools.wraps(add)
    def add_and_trim(shard: StreamShard, *args: Any, **kwargs: Any) -> None:
        add(shard, *args, **kwargs)
        if shard.items and not hasattr(shard.items[-1], _ADDED_AT_ATTRIBUTE):
            setattr(shard.items[-1], _ADDED_AT_ATTRIBUTE, _now())
        _trim(shard)

    add_and_trim.__retained__ = True  # type: ignore[attr-defined]
    return add_and_trim


class TrimmedDataAccess(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("TrimmedDataAccessException", "The records asked for are past the stream's retention.")


class ExpiredIterator(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("ExpiredIteratorException", "The shard iterator has expired.")


def _within_retention(get: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """`StreamShard.get` that answers a read from before the oldest record kept as DynamoDB does."""

    @functools.wraps(get)
    def get_kept(shard: StreamShard, start: int, quantity: int) -> list[dict[str, Any]]:
        if start < shard.starting_sequence_number:
            raise TrimmedDataAccess()
        return get(shard, start, quantity)

    get_kept.__retained__ = True  # type: ignore[attr-defined]
    return get_kept


def _issued_iterators(backend: DynamoDBStreamsBackend) -> OrderedDict[str, float]:
    """The backend's shard iterators, oldest first, by when they were handed out; the expired forgotten
    (moto keeps each one, and a stream reader gets a new one with every read)."""
    issued: OrderedDict[str, float] = backend.__dict__.setdefault(_ITERATORS_ATTRIBUTE, OrderedDict())
    horizon = _now() - SHARD_ITERATOR_LIFETIME_SECONDS
    while issued and next(iter(issued.values())) <= horizon:
        arn, _ = issued.popitem(last=False)
        backend.shard_iterators.pop(arn, None)
    return issued


def _expiring_get_shard_iterator(get_shard_iterator: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(get_shard_iterator)
    def issue(backend: DynamoDBStreamsBackend, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            iterator = get_shard_iterator(backend, *args, **kwargs)
            _issued_iterators(backend)[iterator.arn] = _now()
            return iterator

    issue.__atomic__ = True  # type: ignore[attr-defined]
    return issue


def _expiring_get_records(get_records: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`GetRecords` under the lock (a transaction's records are not read before it is done, and may be
    taken back), with DynamoDB's `ExpiredIteratorException` for an iterator it no longer knows."""

    @functools.wraps(get_records)
    def read(backend: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
        with _lock:
            issued = _issued_iterators(backend)
            iterator = backend.shard_iterators.get(iterator_arn)
            if iterator is None:
                raise ExpiredIterator()
            _trim(iterator.stream_shard)
            result = get_records(backend, iterator_arn, limit)
            issued[result["NextShardIterator"]] = _now()
            return result

    read.__atomic__ = True  # type: ignore[attr-defined]
    return read


def make_dynamodb_atomic() -> None:
    """Idempotent: wraps each item operation of moto's DynamoDB backend in one process-wide lock, and
    makes `TransactWriteItems` honour its `ClientRequestToken` under the same lock, roll back only what
    it wrote, the stream keep only what DynamoDB Streams keeps, and a query read only its partition; and
    makes moto lean (`local.lean_moto`): the same answers for less CPU."""
    make_moto_lean()
    if not getattr(Table.query, "__partitioned__", False):
        Table.query = _partitioned(Table.query)  # type: ignore[method-assign]
    if not getattr(DynamoDBBackend.transact_write_items, "__atomic__", False):
        DynamoDBBackend.transact_write_items = _atomic(transact_write_items)  # type: ignore[method-assign]
    for name in _OPERATIONS:
        operation = getattr(DynamoDBBackend, name)
        if not getattr(operation, "__atomic__", False):
            setattr(DynamoDBBackend, name, _atomic(operation))
    if not getattr(DynamoHandler.call_action, "__atomic__", False):
        # a whole request under the lock, answer included: moto answers with its live items, which
        # another request's update changes in place ("dictionary changed size during iteration")
        DynamoHandler.call_action = _atomic(DynamoHandler.call_action)  # type: ignore[method-assign]
    if not getattr(DynamoHandler.transact_write_items, "__atomic__", False):
        DynamoHandler.transact_write_items = _once_per_token(DynamoHandler.transact_write_items)  # type: ignore[method-assign]
    if not getattr(StreamShard.add, "__retained__", False):
        StreamShard.add = _retained(StreamShard.add)  # type: ignore[method-assign]
        StreamShard.get = _within_retention(StreamShard.get)  # type: ignore[method-assign]
    if not getattr(DynamoDBStreamsBackend.get_records, "__atomic__", False):
        DynamoDBStreamsBackend.get_records = _expiring_get_records(DynamoDBStreamsBackend.get_records)  # type: ignore[method-assign]
        DynamoDBStreamsBackend.get_shard_iterator = _expiring_get_shard_iterator(  # type: ignore[method-assign]
            DynamoDBStreamsBackend.get_shard_iterator
        )
    _stop_tracking_models()


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
    """moto's server (the same app and request handler as `moto_server`), atomic, maybe gated, faults ready,
    expired items swept."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(prog="python -m local.atomic_moto")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--ttl-sweep-seconds",
        type=float,
        default=float(os.environ.get(TTL_SWEEP_ENV) or TTL_SWEEP_SECONDS),
        help="how often expired items are deleted (0: never)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = application()
    if args.ttl_sweep_seconds > 0:
        TtlSweeper(args.ttl_sweep_seconds).start()
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
