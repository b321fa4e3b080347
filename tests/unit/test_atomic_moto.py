"""The local DynamoDB's transactions and stream (local/atomic_moto.py): all or nothing, without moto's
copy of the whole table per transaction, and a stream that keeps what DynamoDB Streams keeps.

`ClientRequestToken` idempotency is tested with the faults, in test_db_faults.py."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamRecord
from moto.dynamodbstreams.models import dynamodbstreams_backends
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server

from local import atomic_moto
from shared.store.schema import COACH_TABLE
from tests.fixtures.aws import loopback_client


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def stored(client: Any, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    return client.get_item(TableName=table, Key=key(pk, sk), ConsistentRead=True).get("Item")


def put(table: str, pk: str, sk: str, **attributes: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": {**key(pk, sk), **attributes}}}


def add_one(table: str, pk: str, sk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": key(pk, sk),
            "UpdateExpression": "ADD hits :one SET note = :note",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":note": {"S": "changed"}},
        }
    }


def must_exist(table: str, pk: str, sk: str) -> dict[str, Any]:
    return {"ConditionCheck": {"TableName": table, "Key": key(pk, sk), "ConditionExpression": "attribute_exists(pk)"}}


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


# --- all or nothing, on moto in process ------------------------------------------------------------


@pytest.fixture
def client(table: Any) -> Any:
    """A plain client, and in the table: a counter, and a message with a body."""
    client = boto3.client("dynamodb")
    client.put_item(
        TableName=table.name, Item={**key("USER#u", "COUNTER"), "hits": {"N": "5"}, "note": {"S": "as it was"}}
    )
    client.put_item(TableName=table.name, Item={**key("USER#u", "MSG#1"), "body": {"S": "hello"}})
    return client


def test_a_transaction_that_fails_a_condition_leaves_every_item_as_it_was(client, table):
    before = {sk: stored(client, table.name, "USER#u", sk) for sk in ("COUNTER", "MSG#1")}
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                put(table.name, "USER#u", "MSG#2", body={"S": "new"}),
                add_one(table.name, "USER#u", "COUNTER"),
                {"Delete": {"TableName": table.name, "Key": key("USER#u", "MSG#1")}},
                must_exist(table.name, "USER#u", "MISSING"),
            ]
        )
    assert error_code(raised) == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert stored(client, table.name, "USER#u", "MSG#2") is None
    assert {sk: stored(client, table.name, "USER#u", sk) for sk in ("COUNTER", "MSG#1")} == before


def test_a_transaction_that_fails_validation_midway_undoes_what_it_applied(client, table):
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                put(table.name, "USER#u", "MSG#2", body={"S": "new"}),
                add_one(table.name, "USER#u", "COUNTER"),
                add_one(table.name, "USER#u", "COUNTER"),  # one item twice: the whole request is invalid
            ]
        )
    assert error_code(raised) == "ValidationException"
    assert stored(client, table.name, "USER#u", "MSG#2") is None
    assert stored(client, table.name, "USER#u", "COUNTER")["hits"] == {"N": "5"}


def test_a_failed_transaction_on_a_table_without_a_sort_key_leaves_it_as_it_was(client, table):
    client.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName="plain", Item={"pk": {"S": "a"}, "hits": {"N": "1"}})
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "plain", "Item": {"pk": {"S": "b"}}}},
                {
                    "Update": {
                        "TableName": "plain",
                        "Key": {"pk": {"S": "a"}},
                        "UpdateExpression": "ADD hits :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                must_exist(table.name, "USER#u", "MISSING"),
            ]
        )
    assert client.scan(TableName="plain")["Items"] == [{"pk": {"S": "a"}, "hits": {"N": "1"}}]


def test_a_transaction_that_succeeds_applies_all_of_its_writes(client, table):
    client.transact_write_items(
        TransactItems=[
            put(table.name, "USER#u", "MSG#2", body={"S": "new"}),
            add_one(table.name, "USER#u", "COUNTER"),
            {"Delete": {"TableName": table.name, "Key": key("USER#u", "MSG#1")}},
            add_one(table.name, "USER#v", "COUNTER"),  # an update creates what is not there
            {
                "ConditionCheck": {
                    "TableName": table.name,
                    "Key": key("USER#w", "COUNTER"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )
    assert stored(client, table.name, "USER#u", "MSG#2")["body"] == {"S": "new"}
    assert stored(client, table.name, "USER#u", "COUNTER")["hits"] == {"N": "6"}
    assert stored(client, table.name, "USER#u", "COUNTER")["note"] == {"S": "changed"}
    assert stored(client, table.name, "USER#u", "MSG#1") is None
    assert stored(client, table.name, "USER#v", "COUNTER")["hits"] == {"N": "1"}


def test_retained_memory_does_not_grow_with_the_number_of_transactions(client, table):
    """moto copies the whole table for each transaction and keeps every copy: N transactions on a table
    of many items must retain about nothing, not N tables."""
    tracemalloc.start()
    try:
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
        for batch in range(12):
            client.batch_write_item(
                RequestItems={
                    table.name: [
                        {"PutRequest": {"Item": {**key(f"USER#{batch}-{n}", "PROFILE"), "body": {"S": "x" * 1000}}}}
                        for n in range(25)
                    ]
                }
            )
        client.transact_write_items(TransactItems=[add_one(table.name, "USER#u", "COUNTER")])  # warms the client
        gc.collect()
        filled = tracemalloc.get_traced_memory()[0]
        for n in range(20):
            client.transact_write_items(
                TransactItems=[add_one(table.name, "USER#u", "COUNTER")], ClientRequestToken=f"turn-{n}"
            )
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - filled
    finally:
        tracemalloc.stop()
    table_size = filled - empty
    assert grown < table_size / 10, (
        f"20 transactions kept {grown / 1024:.0f} KiB; the table is {table_size / 1024:.0f} KiB"
    )
    assert stored(client, table.name, "USER#u", "COUNTER")["hits"] == {"N": "26"}


def test_moto_keeps_no_dynamodb_model_it_made(client, table):
    client.transact_write_items(TransactItems=[add_one(table.name, "USER#u", "COUNTER")])
    client.query(
        TableName=table.name, KeyConditionExpression="pk = :u", ExpressionAttributeValues={":u": {"S": "USER#u"}}
    )
    assert Item.instances_tracked == []  # type: ignore[attr-defined]
    assert StreamRecord.instances_tracked == []  # type: ignore[attr-defined]


# --- the table's stream, on moto's server (the app `python -m local.atomic_moto` runs) -------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, atomic_moto.application({}), threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


class Stream:
    """A table with a stream on the server, and a reader of its one shard."""

    def __init__(self, endpoint: str) -> None:
        self.dynamodb = loopback_client("dynamodb", endpoint, region="us-east-1", read_timeout=5)
        self.streams = loopback_client("dynamodbstreams", endpoint, region="us-east-1", read_timeout=5)
        self.table = f"stream-{uuid.uuid4().hex[:8]}"
        request = COACH_TABLE.create_table_request(self.table)
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        self.arn = self.dynamodb.create_table(**request)["TableDescription"]["LatestStreamArn"]
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.shard = shards[0]["ShardId"]

    def iterator(self, kind: str = "TRIM_HORIZON", **sequence: str) -> str:
        request = {"StreamArn": self.arn, "ShardId": self.shard, "ShardIteratorType": kind, **sequence}
        return str(self.streams.get_shard_iterator(**request)["ShardIterator"])

    def read(self, iterator: str) -> tuple[list[str], str]:
        """The sort keys of the records, and the next iterator."""
        answer = self.streams.get_records(ShardIterator=iterator)
        return [r["dynamodb"]["Keys"]["sk"]["S"] for r in answer["Records"]], answer["NextShardIterator"]

    def put(self, sk: str) -> None:
        self.dynamodb.put_item(TableName=self.table, Item=key("USER#u", sk))


@pytest.fixture
def stream(endpoint: str) -> Stream:
    """On a server reset first: what earlier tests' clocks left behind is gone."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=5).close()
    return Stream(endpoint)


def test_a_failed_transaction_leaves_no_record_and_the_reader_sees_the_next_write(stream):
    stream.put("MSG#1")
    read, iterator = stream.read(stream.iterator())
    assert read == ["MSG#1"]
    with pytest.raises(ClientError):
        stream.dynamodb.transact_write_items(
            TransactItems=[put(stream.table, "USER#u", "MSG#2"), must_exist(stream.table, "USER#u", "MISSING")]
        )
    stream.put("MSG#3")
    read, _ = stream.read(iterator)  # moto's rollback swapped the table: this reader's shard got no more records
    assert read == ["MSG#3"]
    assert stream.read(stream.iterator())[0] == ["MSG#1", "MSG#3"]


def test_stream_records_are_kept_for_24_hours(stream, monkeypatch):
    clock = [atomic_moto._now()]
    monkeypatch.setattr(atomic_moto, "_now", lambda: clock[0])
    stream.put("MSG#1")
    first = stream.streams.get_records(ShardIterator=stream.iterator())["Records"][0]["dynamodb"]["SequenceNumber"]
    clock[0] += atomic_moto.STREAM_RETENTION_SECONDS - 1
    stream.put("MSG#2")
    assert stream.read(stream.iterator())[0] == ["MSG#1", "MSG#2"]
    clock[0] += 2
    stream.put("MSG#3")
    assert stream.read(stream.iterator())[0] == ["MSG#2", "MSG#3"]
    with pytest.raises(ClientError) as raised:
        stream.read(stream.iterator("AT_SEQUENCE_NUMBER", SequenceNumber=first))
    assert error_code(raised) == "TrimmedDataAccessException"
    after_first = stream.iterator("AFTER_SEQUENCE_NUMBER", SequenceNumber=first)
    assert stream.read(after_first)[0] == ["MSG#2", "MSG#3"]  # the records kept keep their sequence numbers


def test_a_shard_iterator_expires_15_minutes_after_it_was_handed_out(stream, monkeypatch):
    clock = [atomic_moto._now()]
    monkeypatch.setattr(atomic_moto, "_now", lambda: clock[0])
    iterator = stream.iterator()
    for _ in range(50):  # a reader polling an idle stream gets a new iterator from each read
        _, iterator = stream.read(iterator)
    clock[0] += atomic_moto.SHARD_ITERATOR_LIFETIME_SECONDS + 1
    stream.put("MSG#1")
    with pytest.raises(ClientError) as raised:
        stream.read(iterator)
    assert error_code(raised) == "ExpiredIteratorException"
    assert stream.read(stream.iterator())[0] == ["MSG#1"]
    kept = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].shard_iterators
    assert len(kept) <= 2  # those handed out since the clock moved
