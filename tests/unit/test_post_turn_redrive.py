"""The redrive tool's reading of a dead letter, on moto's DynamoDB Streams and SQS: exactly the batch's records
(the mapping's filter applied to what lies between its first and last sequence numbers), one invoke, and a
message deleted only when its work succeeded."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.catalog import COACH_CONVERSATION_POST_TURN, POST_TURN_ITEM_TYPE
from local.dynamodb import LocalDynamoDb
from ops.redrive_post_turn import Redriver, Target
from ops.stream_events import read_batch

REGION = "us-east-1"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalDynamoDb]:
    local = LocalDynamoDb().start()
    yield local
    local.stop()


class FakeLambda:
    """Records each synchronous invoke; answers with `answer` (a response document) and an optional error."""

    def __init__(self, answer: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer or {"batchItemFailures": []}
        self.error = error

    def invoke(self, **request: Any) -> dict[str, Any]:
        assert request["InvocationType"] == "RequestResponse"
        self.events.append(json.loads(request["Payload"]))
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.error:
            response["FunctionError"] = self.error
        return response


@pytest.fixture
def world(server: LocalDynamoDb) -> dict[str, Any]:
    """A table with a stream holding job, other, job, other items, and a dead letter naming the two jobs."""
    name = f"redrive-{uuid.uuid4().hex[:8]}"
    server.create_table(name, stream_view_type="NEW_IMAGE")
    table = server.resource().Table(name)
    for index, kind in enumerate((POST_TURN_ITEM_TYPE, "message", POST_TURN_ITEM_TYPE, "message")):
        table.put_item(Item={"pk": "USER#u", "sk": f"ITEM#{index}", "type": kind, "job": {"n": index}})
    streams = server.client("dynamodbstreams")
    stream_arn = server.client().describe_table(TableName=name)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    info = {
        "shardId": shard["ShardId"],
        "startSequenceNumber": sequences[0],
        "endSequenceNumber": sequences[2],
        "batchSize": 2,
        "streamArn": stream_arn,
    }
    sqs = server.client("sqs")
    queue = f"{name}-dlq"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"requestContext": {}, "DDBStreamBatchInfo": info}))
    return {"streams": streams, "sqs": sqs, "url": url, "queue": queue, "info": info, "sequences": sequences}


def redriver(world: dict[str, Any], function: FakeLambda, *, dry_run: bool = False) -> Redriver:
    target = Target.of(COACH_CONVERSATION_POST_TURN, "coach-stream")
    target = Target(target.function_name, world["queue"], target.filters, timeout_seconds=1)
    return Redriver(target, world["sqs"], world["streams"], function, REGION, dry_run=dry_run, say=lambda _: None)


def left(world: dict[str, Any]) -> int:
    attributes = world["sqs"].get_queue_attributes(QueueUrl=world["url"], AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_batch_is_read_back_up_to_its_last_record_and_filtered_as_the_mapping_did(world) -> None:
    between = read_batch(world["streams"], world["info"])
    assert [r["dynamodb"]["SequenceNumber"] for r in between] == world["sequences"][:3]  # not past the end

    function = FakeLambda()
    outcome = redriver(world, function).run()
    assert (outcome.redriven, outcome.kept, outcome.ok) == (1, 0, True)
    ((event),) = function.events
    records = event["Records"]
    assert [r["dynamodb"]["NewImage"]["sk"]["S"] for r in records] == ["ITEM#0", "ITEM#2"]  # the jobs only
    assert all(r["eventSourceARN"] == world["info"]["streamArn"] and r["eventName"] == "INSERT" for r in records)
    assert left(world) == 0


def test_a_dry_run_invokes_nothing_and_keeps_the_message(world) -> None:
    function = FakeLambda()
    outcome = redriver(world, function, dry_run=True).run()
    assert (outcome.redriven, function.events) == (1, [])
    assert "would invoke coach-stream-coach-conversation-post-turn with 2" in outcome.lines[0]
    assert left(world) == 1


@pytest.mark.parametrize(
    "function",
    [FakeLambda(error="Unhandled"), FakeLambda({"batchItemFailures": [{"itemIdentifier": "1"}]})],
    ids=["function error", "a record failed"],
)
def test_work_that_fails_again_keeps_its_message_visible(world, function) -> None:
    outcome = redriver(world, function).run()
    assert (outcome.redriven, outcome.kept, outcome.ok) == (0, 1, False)
    assert outcome.lines[0].startswith("kept")
    received = world["sqs"].receive_message(QueueUrl=world["url"], MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1  # visible again at once, for the alarm and the next run


def test_a_batch_that_cannot_be_found_whole_is_kept(world) -> None:
    sqs = world["sqs"]
    (message,) = sqs.receive_message(QueueUrl=world["url"], MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=world["url"], ReceiptHandle=message["ReceiptHandle"])
    wrong = {**world["info"], "batchSize": 3}
    sqs.send_message(QueueUrl=world["url"], MessageBody=json.dumps({"DDBStreamBatchInfo": wrong}))
    sqs.send_message(QueueUrl=world["url"], MessageBody="not a dead letter")
    function = FakeLambda()
    outcome = redriver(world, function).run()
    assert (outcome.kept, outcome.skipped, function.events) == (1, 1, [])
    assert any("found 2 of its 3 records" in line for line in outcome.lines)
    assert left(world) == 2
