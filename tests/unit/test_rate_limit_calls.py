"""The recorded calls tell the rate limit's requests from the rest: the time budgets count them against its
own client (`rate_limit` in `sdk_calls`), so the integration tests must attribute them to it."""

from __future__ import annotations

import json

from local.aws_calls import describe, dynamodb_item_key
from local.iam_gate import AwsCall
from local.iam_report import requests_per_invocation
from tests.integration.conftest import sdk_client

TARGET = "DynamoDB_20120810.UpdateItem"
FUNCTION = "coach-stream-coach-api"


def signed(service: str) -> dict[str, str]:
    credential = f"Credential={FUNCTION}/20260101/us-east-1/{service}/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 {credential}, SignedHeaders=host, Signature=x"}


def update(pk: str, sk: str) -> bytes:
    return json.dumps({"TableName": "t", "Key": {"sk": {"S": sk}, "pk": {"S": pk}}}).encode()


def test_a_single_item_request_is_recorded_with_its_key() -> None:
    request = describe("POST", "/", {**signed("dynamodb"), "X-Amz-Target": TARGET}, update("RATE#u-1", "LIMIT#reads"))
    assert request.item_key == "RATE#u-1|LIMIT#reads"  # attribute-name order, whatever the body's
    query = json.dumps({"TableName": "t", "KeyConditionExpression": "pk = :p"}).encode()
    assert dynamodb_item_key("DynamoDB_20120810.Query", query) == ""
    assert dynamodb_item_key(TARGET, b"not json") == ""


def call(service: str, key: str, trace: str, request_id: str) -> AwsCall:
    return AwsCall(FUNCTION, service, f"{service}:X", "arn", "allowed", "X", trace, request_id, key)


def test_the_rate_limits_requests_count_against_its_own_client() -> None:
    calls = [
        call("dynamodb", "RATE#u-1|LIMIT#reads", "t1", "r1"),
        call("dynamodb", "USER#u-1|COACH#c", "t1", "r2"),
        call("dynamodb", "", "t1", "r3"),  # a query
        call("bedrock", "", "t1", "r4"),
        call("dynamodb", "RATE#u-1|LIMIT#writes", "t2", "r5"),
    ]
    assert requests_per_invocation(calls, sdk_client) == {FUNCTION: {"rate_limit": 1, "dynamodb": 2, "model": 1}}
    assert requests_per_invocation(calls) == {FUNCTION: {"dynamodb": 3, "bedrock": 1}}  # by service, as before
