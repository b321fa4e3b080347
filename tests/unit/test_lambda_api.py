"""The local Invoke API, judged by boto3's own Lambda client (botocore parses every answer)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.lambda_api import AsyncResult, LambdaApiServer, function_name_of
from tests.fixtures.aws import loopback_client
from tests.fixtures.lambda_api import FakeFunction, crash, echo, lambda_api_servers


@pytest.fixture
def make_server() -> Iterator[Callable[..., LambdaApiServer]]:
    with lambda_api_servers() as make:
        yield make


def lambda_client(server: LambdaApiServer) -> Any:
    return loopback_client("lambda", server.url, region="us-east-1", read_timeout=10)


def test_event_answers_202_at_once_and_runs_in_the_background(
    make_server: Callable[..., LambdaApiServer],
) -> None:
    function = FakeFunction(echo)
    function.gate.clear()  # the function cannot finish until the caller has its answer
    heard: list[AsyncResult] = []
    server = make_server({"build-coach": function}, on_async_result=heard.append)

    response = lambda_client(server).invoke(FunctionName="build-coach", InvocationType="Event", Payload=b'{"job": 1}')

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert server.async_results == []
    function.gate.set()
    assert server.wait_for_async_results(1, timeout=5)
    (result,) = server.async_results
    assert (result.function_name, result.attempts, result.succeeded) == ("build-coach", 1, True)
    assert json.loads(result.payload) == {"echo": {"job": 1}}
    assert heard == [result]
    assert function.events == [{"job": 1}]


def test_request_response_returns_the_result(make_server: Callable[..., LambdaApiServer]) -> None:
    server = make_server({"echo": FakeFunction(echo)})

    response = lambda_client(server).invoke(FunctionName="echo", Payload=json.dumps({"a": [1, 2]}))

    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"echo": {"a": [1, 2]}}


def test_an_empty_payload_is_an_empty_object(make_server: Callable[..., LambdaApiServer]) -> None:
    server = make_server({"echo": FakeFunction(echo)})

    response = lambda_client(server).invoke(FunctionName="echo")

    assert json.loads(response["Payload"].read()) == {"echo": {}}


def test_a_function_error_is_reported_in_a_200(make_server: Callable[..., LambdaApiServer]) -> None:
    server = make_server({"broken": FakeFunction(crash)})

    response = lambda_client(server).invoke(FunctionName="broken", Payload=b"{}")

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorMessage"] == "boom"


def test_a_failing_event_is_tried_three_times_then_given_up(
    make_server: Callable[..., LambdaApiServer],
) -> None:
    function = FakeFunction(crash)
    server = make_server({"broken": function})

    response = lambda_client(server).invoke(FunctionName="broken", InvocationType="Event", Payload=b"{}")

    assert response["StatusCode"] == 202
    assert server.wait_for_async_results(1, timeout=5)
    (result,) = server.async_results
    assert (result.attempts, result.succeeded, result.error_type) == (3, False, "RuntimeError")
    assert len(function.events) == 3


def test_a_retry_that_succeeds_ends_the_retries(make_server: Callable[..., LambdaApiServer]) -> None:
    function = FakeFunction(crash, echo)
    server = make_server({"flaky": function})

    lambda_client(server).invoke(FunctionName="flaky", InvocationType="Event", Payload=b'{"n": 1}')

    assert server.wait_for_async_results(1, timeout=5)
    (result,) = server.async_results
    assert (result.attempts, result.succeeded) == (2, True)
    assert function.events == [{"n": 1}, {"n": 1}]


def test_an_unknown_function_raises_resource_not_found(make_server: Callable[..., LambdaApiServer]) -> None:
    client = lambda_client(make_server({"echo": FakeFunction(echo)}))

    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.invoke(FunctionName="missing", InvocationType="Event", Payload=b"{}")

    assert "missing" in raised.value.response["Error"]["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_function_may_be_named_by_its_arn(make_server: Callable[..., LambdaApiServer]) -> None:
    server = make_server({"echo": FakeFunction(echo)})
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"

    response = lambda_client(server).invoke(FunctionName=arn, Payload=b"{}")

    assert json.loads(response["Payload"].read()) == {"echo": {}}


def test_an_invalid_json_payload_is_rejected(make_server: Callable[..., LambdaApiServer]) -> None:
    client = lambda_client(make_server({"echo": FakeFunction(echo)}))

    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"{not json")


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("echo", "echo"),
        ("echo:live", "echo"),
        ("123456789012:function:echo", "echo"),
        ("arn:aws:lambda:us-east-1:123456789012:function:echo", "echo"),
        ("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aecho%3A%24LATEST", "echo"),
    ],
)
def test_function_names(given: str, name: str) -> None:
    assert function_name_of(given) == name
