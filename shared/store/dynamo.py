"""The table handle: one boto3 resource per container, configured for Lambda's latency budget.

The endpoint is never set in code: boto3 reads `AWS_ENDPOINT_URL_DYNAMODB`, which is how the local
stack points the very same code at its local DynamoDB.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import boto3

from shared.aws_clients import DYNAMODB
from shared.settings import TableSettings, settings

CLIENT_CONFIG = DYNAMODB.botocore_config(tcp_keepalive=True)


@cache
def coach_table() -> Any:
    """The coach table's boto3 `Table`, created on first use and kept for the container's life."""
    return boto3.resource("dynamodb", config=CLIENT_CONFIG).Table(settings(TableSettings).table_name)


def dynamo_safe(value: Any) -> Any:
    """DynamoDB takes no floats: numbers become Decimals, all the way down."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: dynamo_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dynamo_safe(v) for v in value]
    return value
