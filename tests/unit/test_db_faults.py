"""The local DynamoDB's own behaviour: `ClientRequestToken` idempotency (local/atomic_moto.py) and
fault injection (local/db_faults.py), on moto in process and on moto's server in a thread."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from local import atomic_moto
from local.db_faults import CONTROL_PATH, FaultControl, FaultRule
from shared.store.schema import COACH_TABLE
from tests.fixtures.aws import atomic_moto_server, loopback_client

KEY = {"pk": {"S": "USER#u"}, "sk": {"S": "COUNTER"}}


def counted_write(table: str, sk: str = "MSG#1") -> list[dict[str, Any]]:
    """A message put only if new, and a counter: applied twice, the put's condition fails."""
    return [
        {
            "Put": {
                "TableName": table,
                "Item": {"pk": {"S": "USER#u"}, "sk": {"S": sk}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": table,
                "Key": KEY,
                "UpdateExpression": "ADD hits :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]


def hits(client: Any, table: str) -> int:
    return int(client.get_item(TableName=table, Key=KEY, ConsistentRead=True)["Item"]["hits"]["N"])


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return raised.value.response["Error"]["Code"]


# --- ClientRequestToken, on moto in process --------------------------------------------------------


@pytest.fixture
def client(table: Any) -> Any:
    """A plain client (the resource's own would serialize these typed values again)."""
    return boto3.client("dynamodb")


def test_a_repeat_with_the_same_token_succeeds_without_being_applied_again(client, table):
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    assert hits(client, table.name) == 1


def test_another_token_is_another_request(client, table):
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-2")
    assert error_code(raised) == "TransactionCanceledException"
    assert hits(client, table.name) == 1


def test_the_same_token_with_another_request_is_a_mismatch(client, table):
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=counted_write(table.name, "MSG#2"), ClientRequestToken="turn-1")
    assert error_code(raised) == "IdempotentParameterMismatchException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert hits(client, table.name) == 1
    assert "Item" not in client.get_item(TableName=table.name, Key={"pk": {"S": "USER#u"}, "sk": {"S": "MSG#2"}})


def test_a_failed_request_leaves_no_token_behind(client, table):
    needs_counter = [
        {"ConditionCheck": {"TableName": table.name, "Key": KEY, "ConditionExpression": "attribute_exists(pk)"}},
        counted_write(table.name, "MSG#2")[0],
    ]
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=needs_counter, ClientRequestToken="turn-2")
    assert error_code(raised) == "TransactionCanceledException"
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    client.transact_write_items(TransactItems=needs_counter, ClientRequestToken="turn-2")  # runs, and now passes
    assert "Item" in client.get_item(TableName=table.name, Key={"pk": {"S": "USER#u"}, "sk": {"S": "MSG#2"}})


def test_a_token_is_forgotten_after_ten_minutes(client, table, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(atomic_moto, "_now", lambda: clock[0])
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    clock[0] += atomic_moto.TOKEN_LIFETIME_SECONDS - 1
    client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    clock[0] += 2  # ten minutes after the first request completed: a new request, whose condition fails
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
    assert error_code(raised) == "TransactionCanceledException"
    assert hits(client, table.name) == 1


def test_concurrent_repeats_of_one_token_apply_once_and_all_succeed(client, table):
    failures: list[BaseException] = []

    def write() -> None:
        try:
            client.transact_write_items(TransactItems=counted_write(table.name), ClientRequestToken="turn-1")
        except ClientError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert hits(client, table.name) == 1


# --- faults, on moto's server (the app `python -m local.atomic_moto` runs) -------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with atomic_moto_server() as url:
        yield url


@pytest.fixture
def faults(endpoint: str) -> Iterator[FaultControl]:
    with FaultControl(endpoint).injected() as control:  # none at first, none left after
        yield control


def dynamodb(endpoint: str, *, read_timeout: float = 5.0, attempts: int = 1) -> Any:
    if attempts == 1:
        return loopback_client("dynamodb", endpoint, region="us-east-1", read_timeout=read_timeout)
    config = Config(read_timeout=read_timeout, retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@pytest.fixture
def server_table(endpoint: str) -> str:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    dynamodb(endpoint).create_table(**COACH_TABLE.create_table_request(name))
    return name


def put(client: Any, table: str, sk: str) -> None:
    client.put_item(TableName=table, Item={"pk": {"S": "USER#u"}, "sk": {"S": sk}})


def stored(client: Any, table: str, sk: str) -> bool:
    return "Item" in client.get_item(TableName=table, Key={"pk": {"S": "USER#u"}, "sk": {"S": sk}})


def test_rules_are_set_listed_with_their_firings_and_cleared(faults, endpoint, server_table):
    faults.set(FaultRule.fail("PutItem", times=2), FaultRule.stall_before("Query", 0.1, contains=["x"]))
    with pytest.raises(ClientError):
        put(dynamodb(endpoint), server_table, "MSG#1")
    listed = faults.rules()
    assert [(rule.operation, rule.fired, rule.times) for rule in listed] == [("PutItem", 1, 2), ("Query", 0, 1)]
    assert listed[1].contains == ("x",)
    faults.clear()
    assert faults.rules() == []
    put(dynamodb(endpoint), server_table, "MSG#1")


def test_a_bad_rule_is_refused_and_changes_nothing(faults, endpoint):
    faults.set(FaultRule.fail("PutItem"))
    for bad in ({"operation": "PutItem", "action": "explode"}, {"operation": "PutItem", "action": "fail", "when": 1}):
        request = urllib.request.Request(endpoint + CONTROL_PATH, data=json.dumps([bad]).encode(), method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400
    assert [rule.action for rule in faults.rules()] == ["fail"]
    with pytest.raises(ValueError, match="stall must last"):
        FaultRule.stall_after("PutItem", 0)


@pytest.mark.parametrize(
    ("error", "status"), [("InternalServerError", 500), ("ProvisionedThroughputExceededException", 400)]
)
def test_fail_answers_the_error_for_the_next_matching_requests_only(faults, endpoint, server_table, error, status):
    client = dynamodb(endpoint)
    faults.set(FaultRule.fail("PutItem", error, contains=["MSG#doomed"], times=2))
    put(client, server_table, "MSG#other")  # the body does not match
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            put(client, server_table, "MSG#doomed")
        assert error_code(raised) == error
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert not stored(client, server_table, "MSG#doomed")  # a failed request is not served
    put(client, server_table, "MSG#doomed")  # the rule is spent
    assert stored(client, server_table, "MSG#doomed")
    assert stored(client, server_table, "MSG#other")


def test_stall_before_waits_then_serves(faults, endpoint, server_table):
    client = dynamodb(endpoint)
    faults.set(FaultRule.stall_before("PutItem", 0.4))
    began = time.monotonic()
    put(client, server_table, "MSG#1")
    assert time.monotonic() - began >= 0.4
    assert stored(client, server_table, "MSG#1")


def test_stall_after_applies_the_write_though_the_client_timed_out(faults, endpoint, server_table):
    faults.set(FaultRule.stall_after("PutItem", 0.8))
    with pytest.raises(ReadTimeoutError):
        put(dynamodb(endpoint, read_timeout=0.3), server_table, "MSG#1")
    assert stored(dynamodb(endpoint), server_table, "MSG#1")
    assert faults.rules()[0].fired == 1


def test_a_transaction_retried_after_a_lost_answer_succeeds_once(faults, endpoint, server_table):
    """The case the token exists for: applied, the answer lost, botocore's retry (same token) succeeds."""
    faults.set(FaultRule.stall_after("TransactWriteItems", 0.8))
    retrying = dynamodb(endpoint, read_timeout=0.3, attempts=3)
    retrying.transact_write_items(TransactItems=counted_write(server_table))
    assert hits(dynamodb(endpoint), server_table) == 1
    assert faults.rules()[0].fired == 1
