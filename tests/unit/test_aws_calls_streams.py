"""What IAM authorizes for the calls an event source mapping makes with its function's role: DynamoDB
Streams reads and the SQS sends of its on-failure destination. Requests are botocore's own, captured before
they leave the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from local.aws_calls import ACCOUNT_ID, Permission, describe

REGION = "us-east-1"
CALLER = "coach-stream-coach-conversation-post-turn"
STREAM = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/coach-stream-local/stream/2026-01-01T00:00:00.000"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:coach-stream-coach-conversation-post-turn-dlq"


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b"{}"


def described(service: str, call: Callable[[Any], Any]) -> tuple[str, tuple[Permission, ...], str]:
    """Make the call with a real client signed as CALLER; describe the request it sent."""
    client = boto3.client(
        service,
        endpoint_url="http://127.0.0.1:9",
        region_name=REGION,
        aws_access_key_id=CALLER,
        aws_secret_access_key="local",
    )
    sent: list[AWSPreparedRequest] = []

    def capture(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, _Raw())

    client.meta.events.register("before-send", capture)
    call(client)
    (request,) = sent
    split = urlsplit(request.url)
    target = split.path + (f"?{split.query}" if split.query else "")
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    found = describe(request.method, target, headers, body)
    assert found.caller == CALLER
    return found.operation, found.permissions, found.service


@pytest.mark.parametrize(
    ("call", "operation", "resource"),
    [
        (lambda c: c.list_streams(TableName="coach-stream-local"), "ListStreams", "*"),
        (lambda c: c.describe_stream(StreamArn=STREAM), "DescribeStream", STREAM),
        (
            lambda c: c.get_shard_iterator(
                StreamArn=STREAM, ShardId="shardId-00000001573689847184-864758bb", ShardIteratorType="TRIM_HORIZON"
            ),
            "GetShardIterator",
            STREAM,
        ),
        (lambda c: c.get_records(ShardIterator=f"{STREAM}|1|AAAAopaque"), "GetRecords", STREAM),
    ],
)
def test_stream_reads_are_authorized_on_the_stream(call: Callable[[Any], Any], operation: str, resource: str) -> None:
    found = described("dynamodbstreams", call)
    assert found == (operation, (Permission(f"dynamodb:{operation}", resource),), "dynamodb")


@pytest.mark.parametrize(
    ("call", "operation", "action"),
    [
        (
            lambda c: c.get_queue_url(QueueName=QUEUE.rsplit(":", 1)[1], QueueOwnerAWSAccountId=ACCOUNT_ID),
            "GetQueueUrl",
            "sqs:GetQueueUrl",
        ),
        (
            lambda c: c.send_message(
                QueueUrl=f"http://127.0.0.1:3003/{ACCOUNT_ID}/{QUEUE.rsplit(':', 1)[1]}", MessageBody="{}"
            ),
            "SendMessage",
            "sqs:SendMessage",
        ),
        (
            lambda c: c.send_message_batch(
                QueueUrl=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_ID}/{QUEUE.rsplit(':', 1)[1]}",
                Entries=[{"Id": "1", "MessageBody": "{}"}],
            ),
            "SendMessageBatch",
            "sqs:SendMessage",
        ),
    ],
)
def test_queue_calls_are_authorized_on_the_queue(call: Callable[[Any], Any], operation: str, action: str) -> None:
    assert described("sqs", call) == (operation, (Permission(action, QUEUE),), "sqs")
