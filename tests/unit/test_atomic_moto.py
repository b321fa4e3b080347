"""The local DynamoDB (local/atomic_moto.py): transactions all or nothing, without moto's copy of the
whole table per transaction; a stream that keeps what DynamoDB Streams keeps; queries that cost their
partition and answer as moto's own; expired items deleted as DynamoDB's TTL deletes them.

`ClientRequestToken` idempotency is tested with the faults, in test_db_faults.py."""

from __future__ import annotations

import gc
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamRecord, Table
from moto.dynamodbstreams.models import dynamodbstreams_backends

from local import atomic_moto
from shared.store.schema import COACH_TABLE
from tests.fixtures.aws import atomic_moto_server, loopback_client


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
    with atomic_moto_server() as url:
        yield url


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


# --- a query reads its own partition, on moto in process -------------------------------------------


def test_a_query_costs_its_partition_not_the_whole_table(client, table):
    """moto walks and sorts every item of the table for each query: the same query must not get slower
    as other partitions fill."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for n in range(20):
        client.put_item(TableName=table.name, Item={**key("USER#q", f"MSG#{n:02d}"), "body": {"S": "x" * 100}})
    request = {
        "TableName": table.name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
        "ExpressionAttributeValues": {":pk": {"S": "USER#q"}, ":msg": {"S": "MSG#"}},
    }

    def fastest() -> float:
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            assert client.query(**request)["Count"] == 20
            timings.append(time.perf_counter() - started)
        return min(timings)

    alone = fastest()
    crowded = backend.get_table(table.name)
    for n in range(5000):
        crowded.put_item({**key(f"USER#other-{n}", "MSG#00"), "body": {"S": "x" * 100}})
    among_others = fastest()
    assert among_others < 2 * alone, f"{among_others * 1000:.1f} ms among 5,000 items, {alone * 1000:.1f} ms alone"


QUERIES: dict[str, dict[str, Any]] = {
    "partition": {"KeyConditionExpression": "pk = :a", "ExpressionAttributeValues": {":a": {"S": "A"}}},
    "begins_with, in pages": {
        "KeyConditionExpression": "pk = :a AND begins_with(sk, :msg)",
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":msg": {"S": "MSG#"}},
        "Limit": 3,
    },
    "between, backwards, in pages": {
        "KeyConditionExpression": "pk = :a AND sk BETWEEN :from AND :to",
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":from": {"S": "MSG#02"}, ":to": {"S": "MSG#07"}},
        "ScanIndexForward": False,
        "Limit": 2,
    },
    "filter and projection": {
        "KeyConditionExpression": "pk = :a AND sk > :after",
        "FilterExpression": "flag = :yes",
        "ProjectionExpression": "#sk, body",
        "ExpressionAttributeNames": {"#sk": "sk"},
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":after": {"S": "MSG#03"}, ":yes": {"BOOL": True}},
    },
    "filter, in pages": {
        "KeyConditionExpression": "pk = :a",
        "FilterExpression": "n >= :five",
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":five": {"N": "5"}},
        "Limit": 4,
    },
    "count, consistent": {
        "KeyConditionExpression": "pk = :a AND sk <= :to",
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":to": {"S": "MSG#05"}},
        "Select": "COUNT",
        "ConsistentRead": True,
    },
    "no such partition": {"KeyConditionExpression": "pk = :z", "ExpressionAttributeValues": {":z": {"S": "Z"}}},
    "key conditions and query filter": {
        "KeyConditions": {
            "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "A"}]},
            "sk": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "MSG#"}]},
        },
        "QueryFilter": {"flag": {"ComparisonOperator": "EQ", "AttributeValueList": [{"BOOL": True}]}},
    },
    "local index, backwards, in pages": {
        "IndexName": "by-n",
        "KeyConditionExpression": "pk = :a AND n BETWEEN :low AND :high",
        "ExpressionAttributeValues": {":a": {"S": "A"}, ":low": {"N": "2"}, ":high": {"N": "10"}},
        "ScanIndexForward": False,
        "Limit": 3,
    },
    "global index, in pages": {
        "IndexName": "by-g",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "G1"}},
        "Limit": 4,
    },
    "global index, begins_with, backwards": {
        "IndexName": "by-g",
        "KeyConditionExpression": "g = :g AND begins_with(sk, :msg)",
        "ExpressionAttributeValues": {":g": {"S": "G1"}, ":msg": {"S": "MSG#"}},
        "ScanIndexForward": False,
    },
    "global index without a sort key, keys only, in pages": {
        "IndexName": "by-h",
        "KeyConditionExpression": "h = :h",
        "ExpressionAttributeValues": {":h": {"S": "H"}},
        "Limit": 2,
    },
}


@pytest.fixture
def indexed(table: Any) -> Any:
    """A table with a local index, two global ones and items in many partitions, and one without a sort key."""
    client = boto3.client("dynamodb")
    client.create_table(
        TableName="indexed",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
            {"AttributeName": "g", "AttributeType": "S"},
            {"AttributeName": "h", "AttributeType": "S"},
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-n",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by-h",
                "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    )
    items = [
        {
            **key("A", f"MSG#{n:02d}"),
            "n": {"N": str(n)},
            "body": {"S": f"message {n}"},
            "flag": {"BOOL": n % 3 == 0},
            **({"g": {"S": f"G{n % 2 + 1}"}} if n != 4 else {}),
            **({"h": {"S": "H"}} if n % 4 == 0 else {}),
        }
        for n in range(12)
    ]
    items += [
        {**key("A", "META"), "body": {"S": "meta"}, "flag": {"BOOL": True}},
        {**key("A", "ZED"), "n": {"N": "100"}, "g": {"S": "G1"}, "flag": {"BOOL": False}},
    ]
    items += [{**key("B", f"MSG#{n:02d}"), "n": {"N": str(n)}, "g": {"S": "G1"}, "h": {"S": "H"}} for n in range(5)]
    items += [{**key(f"C#{n}", "MSG#00"), "g": {"S": "G1"}} for n in range(10)]
    for item in items:
        client.put_item(TableName="indexed", Item=item)
    client.create_table(
        TableName="hash-only",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    for name in ("x", "y", "z"):
        client.put_item(TableName="hash-only", Item={"pk": {"S": name}, "body": {"S": name * 3}})
    return client


def every_page(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Each page of the query's answer, following `LastEvaluatedKey`."""
    pages: list[dict[str, Any]] = []
    while len(pages) < 50:
        page = {k: v for k, v in client.query(**request).items() if k != "ResponseMetadata"}
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    return pages


@pytest.mark.parametrize("name", list(QUERIES))
def test_a_query_answers_as_moto_does(indexed, monkeypatch, name):
    request = {"TableName": "indexed", **QUERIES[name]}
    ours = every_page(indexed, request)
    monkeypatch.setattr(Table, "query", getattr(Table.query, "__wrapped__", Table.query))
    assert ours == every_page(indexed, request)
    assert name == "no such partition" or sum(page["Count"] for page in ours) > 0


def test_a_query_of_a_table_without_a_sort_key_answers_as_moto_does(indexed, monkeypatch):
    request = {
        "TableName": "hash-only",
        "KeyConditionExpression": "pk = :y",
        "ExpressionAttributeValues": {":y": {"S": "y"}},
    }
    ours = every_page(indexed, request)
    monkeypatch.setattr(Table, "query", getattr(Table.query, "__wrapped__", Table.query))
    assert (
        ours
        == every_page(indexed, request)
        == [{"Items": [{"pk": {"S": "y"}, "body": {"S": "yyy"}}], "Count": 1, "ScannedCount": 1}]
    )


# --- Time to Live, on moto's server -----------------------------------------------------------------


def ttl_stream(stream: Stream) -> Stream:
    stream.dynamodb.update_time_to_live(
        TableName=stream.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": COACH_TABLE.ttl_attribute}
    )
    return stream


def expiring(stream: Stream, sk: str, expires: dict[str, str] | None) -> None:
    extra = {COACH_TABLE.ttl_attribute: expires} if expires is not None else {}
    stream.dynamodb.put_item(TableName=stream.table, Item={**key("USER#u", sk), **extra})


def remaining(stream: Stream) -> list[str]:
    items = stream.dynamodb.query(
        TableName=stream.table, KeyConditionExpression="pk = :u", ExpressionAttributeValues={":u": {"S": "USER#u"}}
    )["Items"]
    return [item["sk"]["S"] for item in items]


def test_expired_items_are_deleted_as_dynamodb_ttl_does_with_a_service_remove_record(stream):
    ttl_stream(stream)
    now = time.time()
    expiring(stream, "EXPIRED", {"N": str(int(now) - 10)})
    expiring(stream, "LATER", {"N": str(int(now) + 3600)})
    expiring(stream, "TEXT", {"S": str(int(now) - 10)})  # TTL reads numbers only
    expiring(stream, "ANCIENT", {"N": str(int(now - atomic_moto.TTL_HORIZON_SECONDS) - 10)})  # over five years past
    expiring(stream, "NONE", None)
    stream.dynamodb.delete_item(TableName=stream.table, Key=key("USER#u", "NONE"))  # a delete by a caller

    assert atomic_moto.delete_expired(now) == 1

    assert remaining(stream) == ["ANCIENT", "LATER", "TEXT"]
    records = stream.streams.get_records(ShardIterator=stream.iterator())["Records"]
    by_caller, by_ttl = [r for r in records if r["eventName"] == "REMOVE"]
    assert by_caller["dynamodb"]["Keys"]["sk"] == {"S": "NONE"} and "userIdentity" not in by_caller
    assert by_ttl["dynamodb"]["Keys"]["sk"] == {"S": "EXPIRED"}
    assert by_ttl["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert atomic_moto.delete_expired(now) == 0


def test_nothing_expires_in_a_table_without_ttl(stream):
    expiring(stream, "EXPIRED", {"N": "1000"})
    assert atomic_moto.delete_expired() == 0
    assert remaining(stream) == ["EXPIRED"]


def test_the_sweeper_deletes_expired_items_as_they_expire(stream):
    ttl_stream(stream)
    expiring(stream, "EXPIRED", {"N": str(int(time.time()) - 1)})
    expiring(stream, "SOON", {"N": str(int(time.time()) + 1)})
    sweeper = atomic_moto.TtlSweeper(interval=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while remaining(stream) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert remaining(stream) == []


def test_a_sweep_lets_go_of_the_empty_partitions_moto_keeps_for_each_missing_one_read(client, table):
    client.update_time_to_live(
        TableName=table.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": COACH_TABLE.ttl_attribute}
    )
    assert stored(client, table.name, "USER#nobody", "PROFILE") is None
    partitions = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(table.name).items
    assert partitions[DynamoType({"S": "USER#nobody"})] == {}
    atomic_moto.delete_expired()
    assert [k.value for k in partitions] == ["USER#u"]
