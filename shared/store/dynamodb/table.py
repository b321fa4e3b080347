"""The table handle, and the two DynamoDB idioms every adapter here shares.

The endpoint is never set in code: boto3 reads `AWS_ENDPOINT_URL_DYNAMODB`, which is how the local
stack points the very same code at its local DynamoDB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import Any

import boto3  # noqa: F401 - at init, not in the first request: every function's first reads need it
from botocore.exceptions import ClientError

from shared.aws_clients import DYNAMODB, ClientLimits, make_resource
from shared.settings import TableSettings, settings

_opening = threading.Lock()


def coach_table(table_name: str | None = None, limits: ClientLimits = DYNAMODB) -> Any:
    """The table's boto3 `Table`, created on first use and kept for the container's life.

    The composition roots name the table from their settings model; without a name, the function's
    `COACH_TABLE_NAME` setting is used. Created once even when a turn's first reads start together:
    they wait for it under a lock (`shared.aws_clients` makes it on the process's one session).
    A caller with a budget of its own (the rate limit) names its `limits` and gets a client of its own.
    """
    with _opening:
        return _open_table(table_name or settings(TableSettings).table_name, limits)


@cache
def _open_table(table_name: str, limits: ClientLimits) -> Any:
    config = limits.botocore_config(tcp_keepalive=True)
    return make_resource("dynamodb", config).Table(table_name)


forget_tables = _open_table.cache_clear  # tests that point the same name at a new table


class TableAdapter:
    """Base of the adapters: a boto3 `Table` handed in (tests), or the named table, opened on first use."""

    def __init__(self, table: Any | None = None, *, table_name: str | None = None) -> None:
        self._table = table
        self._table_name = table_name

    @property
    def table(self) -> Any:
        return self._table or coach_table(self._table_name)


class ConditionFailed(Exception):
    """A conditional write's condition did not hold; the adapter says what that means. `item` is the item as
    the write found it when the write asked for it (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), in the
    low-level attribute-value form."""

    def __init__(self, item: dict[str, Any] | None = None) -> None:
        super().__init__("the condition did not hold")
        self.item = item


@contextmanager
def conditional_write() -> Iterator[None]:
    """Turns DynamoDB's `ConditionalCheckFailedException` into `ConditionFailed`; other errors pass."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise ConditionFailed(exc.response.get("Item")) from None
        raise


def dynamo_safe(value: Any) -> Any:
    """DynamoDB takes no floats: numbers become Decimals, all the way down."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: dynamo_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dynamo_safe(v) for v in value]
    return value
