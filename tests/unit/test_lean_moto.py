"""The lean local DynamoDB answers exactly as moto's own code does: each change is compared with moto's."""

from __future__ import annotations

import base64
import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import serialize
from moto.core.utils import get_service_model
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

from local.lean_moto import (
    DynamoDbJsonSerializer,
    RootActionCountValidator,
    RootOverlappingPathsValidator,
    make_moto_lean,
)
from tests.fixtures.aws import moto_coach_table

ATTRIBUTES: list[dict[str, Any]] = [
    {"S": "plain"},
    {"S": ""},
    {"S": 'ünïcode ✓ "quoted" \n'},
    {"N": "12.50"},
    {"N": "-0"},
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"SS": ["a", "b"]},
    {"NS": ["1", "2.5"]},
    {"B": base64.b64encode(b"\x00\xffbytes").decode()},
    {"BS": [base64.b64encode(b"one").decode(), base64.b64encode(b"two").decode()]},
    {"L": []},
    {"M": {}},
    {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"L": [{"BOOL": False}, {"NULL": True}]}}}]},
    {"M": {"name": {"S": "n"}, "tags": {"SS": ["t"]}, "inner": {"M": {"count": {"N": "3"}}}}},
    {"M": {"blob": {"B": base64.b64encode(b"in a map").decode()}, "s": {"S": "beside it"}}},
    {"L": [{"S": "before"}, {"B": base64.b64encode(b"in a list").decode()}]},
]


def _stored_item(index: int, attribute: dict[str, Any]) -> dict[str, Any]:
    """What moto's backend hands its serializer for an item holding `attribute` (binary decoded in nests)."""
    item = Item(DynamoType({"S": f"pk{index}"}), DynamoType({"S": "sk"}), {"value": attribute, "n": {"N": "1"}})
    return item.to_json()["Attributes"]


def _serialized(serializer_class: type[Any], operation: str, result: dict[str, Any]) -> Any:
    model = get_service_model("dynamodb")
    serializer = serializer_class(
        operation_model=model.operation_model(operation),
        pretty_print=False,
        value_picker=serialize.XFormedAttributePicker(),
    )
    return json.loads(serializer.serialize(result)["body"])


@pytest.mark.parametrize("index", range(len(ATTRIBUTES)))
def test_an_item_is_written_as_motos_own_serializer_writes_it(index):
    item = _stored_item(index, ATTRIBUTES[index])
    for operation, result in (
        ("GetItem", {"Item": item}),
        ("Query", {"Items": [item, item], "Count": 2, "ScannedCount": 2}),
        ("UpdateItem", {"Attributes": item}),
    ):
        lean = _serialized(DynamoDbJsonSerializer, operation, copy.deepcopy(result))
        assert lean == _serialized(serialize.JSONSerializer, operation, copy.deepcopy(result))
        assert lean[next(iter(result))] not in (None, {}, [])


def test_a_binary_value_still_goes_through_motos_serializer_and_comes_back_as_base64():
    item = _stored_item(0, {"M": {"blob": {"B": base64.b64encode(b"raw").decode()}}})
    assert isinstance(item["value"]["M"]["blob"]["B"], bytes)  # moto decodes binary nested in a map
    written = _serialized(DynamoDbJsonSerializer, "GetItem", {"Item": item})
    assert base64.b64decode(written["Item"]["value"]["M"]["blob"]["B"]) == b"raw"


EXPRESSIONS = [
    "SET a = :v, b = :v",
    "SET a = :v SET b = :v",
    "REMOVE a REMOVE b",
    "ADD a :n ADD b :n",
    "SET a = :v, a = :v",
    "SET a = :v, a.b = :v",
    "SET a[0] = :v REMOVE a",
    "SET #n = :v, #n = :v",
    "SET a = :v, b = if_not_exists(c, :v), d = list_append(d, :l) REMOVE e ADD f :n DELETE g :s",
    ", ".join(f"t{i} = if_not_exists(t{i + 1}, :v)" for i in range(40)).join(("SET ", ", t40 = :v")),
]


def _outcome(processor: Any, expression: str) -> tuple[str, str]:
    ast = UpdateExpressionParser.make.__wrapped__(UpdateExpressionParser, expression)  # never the cached tree
    try:
        processor.traverse(ast)
    except MockValidationException as refused:
        return type(refused).__name__, refused.message
    return "accepted", ""


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_whole_expression_checks_on_the_root_decide_as_motos_checks_at_every_node(expression):
    make_moto_lean()
    names = {"#n": "name"}
    pairs = (
        (validators.ActionCountValidator(), RootActionCountValidator()),
        (validators.OverlappingPathsValidator(names), RootOverlappingPathsValidator(names)),
    )
    for moto_own, on_the_root in pairs:
        assert _outcome(on_the_root, expression) == _outcome(moto_own, expression)


def test_the_refusals_reach_a_client_as_dynamodb_words_them(monkeypatch):
    with moto_coach_table(monkeypatch, "lean") as table:
        table.put_item(Item={"pk": "p", "sk": "s", "a": {"b": 1}})
        for expression, words in (
            ("SET a = :v SET c = :v", 'The "SET" section can only be used once in an update expression'),
            ("SET a = :v, a.b = :v", "Two document paths overlap with each other"),
        ):
            with pytest.raises(ClientError) as refused:
                table.update_item(
                    Key={"pk": "p", "sk": "s"}, UpdateExpression=expression, ExpressionAttributeValues={":v": 2}
                )
            assert words in refused.value.response["Error"]["Message"]
        assert table.get_item(Key={"pk": "p", "sk": "s"})["Item"]["a"] == {"b": Decimal(1)}


def test_an_expression_is_parsed_once_and_its_tree_is_never_changed_by_the_updates_that_share_it(monkeypatch):
    with moto_coach_table(monkeypatch, "lean") as table:
        expression = "SET tally = if_not_exists(tally, :zero) + :one, note = :note REMOVE gone"
        tree = UpdateExpressionParser.make(expression)
        before = repr(tree.__dict__), tree.get_value() if hasattr(tree, "get_value") else None
        for n, key in enumerate(("x", "y", "x")):
            table.update_item(
                Key={"pk": key, "sk": "s"},
                UpdateExpression=expression,
                ExpressionAttributeValues={":zero": 0, ":one": 1, ":note": f"note {n}"},
            )
        assert UpdateExpressionParser.make(expression) is tree
        assert (repr(tree.__dict__), tree.get_value() if hasattr(tree, "get_value") else None) == before
        x = table.get_item(Key={"pk": "x", "sk": "s"})["Item"]
        y = table.get_item(Key={"pk": "y", "sk": "s"})["Item"]
        assert (x["tally"], x["note"], y["tally"], y["note"]) == (2, "note 2", 1, "note 1")
