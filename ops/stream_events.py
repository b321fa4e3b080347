"""DynamoDB stream records as Lambda's event source mapping hands them to a function, and a failed batch read
back from the stream.

Lambda's on-failure record for a stream mapping describes a batch (`DDBStreamBatchInfo`: the stream, the shard,
the first and last sequence numbers, the batch size), not its records; the stream keeps them 24 hours. The
local event source mapping builds its events with `lambda_event_record` too, so what a redrive sends is what the
mapping sent.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

MAX_EMPTY_READS = 5  # an open shard answers empty pages while nothing new arrives: stop after a few


class BatchUnreadable(RuntimeError):
    """The stream no longer holds the batch (past its 24 h retention, or the shard is gone)."""


def lambda_event_record(record: Mapping[str, Any], *, region: str, stream_arn: str | None) -> dict[str, Any]:
    """A `GetRecords` record as Lambda's mapping hands it to the function: JSON, times in epoch seconds, binary
    values in base64, and the stream's ARN added."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    event = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": json_ready(stream),
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # GetRecords says Type/PrincipalId; Lambda's event says type/principalId
        identity = record["userIdentity"]
        event["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    return event


def read_batch(streams: Any, batch_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every record of the shard from the batch's first sequence number to its last, as `GetRecords` gives
    them (the mapping's filter has not been applied: records it dropped lie between)."""
    return list(_records_between(streams, batch_info))


def _records_between(streams: Any, info: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=info["streamArn"],
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
        empty = 0
        while iterator and empty < MAX_EMPTY_READS:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            empty = 0 if records else empty + 1
            for record in records:
                sequence = int(record["dynamodb"]["SequenceNumber"])
                if sequence > end:
                    return
                if sequence >= start:
                    yield dict(record)
            iterator = page.get("NextShardIterator")
    except streams.exceptions.TrimmedDataAccessException as exc:
        raise BatchUnreadable("the stream no longer keeps these records (past its 24 h retention)") from exc
    except streams.exceptions.ResourceNotFoundException as exc:
        raise BatchUnreadable("the stream or its shard no longer exists") from exc


def json_ready(value: Any) -> Any:
    """Binary attribute values as Lambda's JSON carries them: base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_ready(item) for item in value]
    return value
