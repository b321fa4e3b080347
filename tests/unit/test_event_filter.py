"""Lambda's filter rules as the local event source mapping applies them (`local/event_filter.py`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.catalog import POST_TURN_STREAM
from local.event_filter import FilterError, accepts, matches, parse_filter_criteria

RECORD: dict[str, Any] = {
    "eventID": "1",
    "eventName": "INSERT",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "Keys": {"pk": {"S": "USER#u#CONV#c"}, "sk": {"S": "POSTTURN#m1"}},
        "NewImage": {
            "pk": {"S": "USER#u#CONV#c"},
            "sk": {"S": "POSTTURN#m1"},
            "type": {"S": "post-turn-job"},
            "job": {"M": {"messageCount": {"N": "4"}}},
            "expiresAt": {"N": "1742212800"},
        },
        "SequenceNumber": "100",
        "SizeBytes": 120,
        "StreamViewType": "NEW_IMAGE",
    },
    "size": 120,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "empty": "",
    "tags": ["alpha", "beta"],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(RECORD))
    for path, value in changes.items():
        target = record
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return record


def test_the_post_turn_filter_takes_inserted_outbox_items_only() -> None:
    (pattern,) = parse_filter_criteria({"Filters": [{"Pattern": json.dumps(POST_TURN_STREAM.filter_pattern())}]})
    assert matches(pattern, RECORD)
    assert not matches(pattern, with_changes(eventName="MODIFY"))  # a rewrite is not a new job
    assert not matches(pattern, with_changes(eventName="REMOVE"))  # nor its expiry by TTL
    assert not matches(pattern, with_changes(dynamodb__NewImage__type={"S": "client-message"}))
    assert not matches(pattern, with_changes(dynamodb__NewImage__type=...))  # a message has no such type
    assert not matches(pattern, with_changes(dynamodb__NewImage=...))  # KEYS_ONLY records carry no image
    assert not matches(pattern, with_changes(dynamodb__NewImage__type={"N": "1"}))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": ["INSERT", "MODIFY"]}, True),  # a list is OR
        ({"eventName": ["MODIFY"]}, False),
        ({"eventName": ["INSERT"], "awsRegion": ["eu-west-1"]}, False),  # keys are AND
        ({"size": [120]}, True),
        ({"size": ["120"]}, False),  # a string is not a number
        ({"flag": [True]}, True),
        ({"flag": [1]}, False),  # nor is a boolean
        ({"nothing": [None]}, True),
        ({"missing": [None]}, False),  # null matches a null value, not a missing key
        ({"empty": [""]}, True),
        ({"tags": ["beta"]}, True),  # any item of a list value
        ({"tags": ["gamma"]}, False),
        ({"dynamodb": {"SequenceNumber": [{"prefix": "10"}]}}, True),
        ({"dynamodb": {"SequenceNumber": [{"suffix": "0"}]}}, True),
        ({"eventName": [{"prefix": {"equals-ignore-case": "ins"}}]}, True),
        ({"eventName": [{"suffix": {"equals-ignore-case": "SERT"}}]}, True),
        ({"eventName": [{"equals-ignore-case": "insert"}]}, True),
        ({"eventName": [{"equals-ignore-case": ["modify", "remove"]}]}, False),
        ({"eventName": [{"anything-but": ["REMOVE"]}]}, True),
        ({"eventName": [{"anything-but": "INSERT"}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "IN"}}]}, False),
        ({"missing": [{"anything-but": "x"}]}, False),  # anything-but needs the key
        ({"size": [{"numeric": [">", 100, "<=", 120]}]}, True),
        ({"size": [{"numeric": ["=", 121]}]}, False),
        ({"ratio": [{"numeric": ["<", 1]}]}, True),
        ({"flag": [{"numeric": [">", 0]}]}, False),
        ({"missing": [{"exists": False}]}, True),
        ({"size": [{"exists": False}]}, False),
        ({"nothing": [{"exists": True}]}, True),  # null is a value
        ({"missing": {"deeper": [{"exists": False}]}}, True),
        ({"eventName": ["INSERT"], "$or": [{"size": [1]}, {"tags": ["alpha"]}]}, True),
        ({"$or": [{"size": [1]}, {"tags": ["gamma"]}]}, False),
        ({"dynamodb": ["x"]}, False),  # an object is not a value
        ({"eventName": {"nested": ["x"]}}, False),  # nor a value an object
    ],
)
def test_the_documented_rules(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, RECORD) is expected


def test_several_filters_are_alternatives_and_none_takes_everything() -> None:
    modify = {"eventName": ["MODIFY"]}
    insert = {"eventName": ["INSERT"]}
    assert accepts([modify, insert], RECORD)
    assert not accepts([modify], RECORD)
    assert accepts([], RECORD)


@pytest.mark.parametrize(
    "pattern",
    [
        {"eventName": [{"wildcard": "IN*"}]},  # not one this emulation judges: refused, never guessed
        {"eventName": "INSERT"},  # a value outside a list
        {"eventName": []},
        {"size": [{"numeric": [">"]}]},
        {"size": [{"numeric": ["~", 1]}]},
        {"eventName": [{"prefix": 1}]},
        {"eventName": [{"exists": "yes"}]},
        {"$or": [{"eventName": ["INSERT"]}]},
        {"eventName": [{"prefix": "I", "suffix": "T"}]},
    ],
)
def test_a_rule_it_cannot_judge_is_refused_when_the_template_is_read(pattern: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        parse_filter_criteria({"Filters": [{"Pattern": json.dumps(pattern)}]})


def test_an_unknown_rule_after_a_failing_key_is_still_refused() -> None:
    with pytest.raises(FilterError):
        matches({"eventName": ["MODIFY"], "size": [{"wildcard": "1*"}]}, RECORD)
