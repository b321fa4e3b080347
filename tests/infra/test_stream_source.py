"""Post-turn work through the table's stream: the stream, the event source mapping, its dead-letter queue and
the IAM it brings, all generated from the catalog's `stream_source` entries (the real catalog and the fake one).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from functions.catalog import (
    COACH_CONVERSATION_POST_TURN,
    FUNCTIONS,
    POST_TURN_ITEM_TYPE,
    SEND_COACH_CONVERSATION_MESSAGE,
    STREAM_COACH_CONVERSATION,
    FunctionDefinition,
    TableStreamSource,
    function_name_variable,
)
from infra.catalog_rules import CatalogError, check, table_stream_view_type
from infra.time_budget import STREAM_RETENTION_SECONDS, TimeBudgetError, record_worst_case
from shared.settings import ModelWorkerSettings, ObservabilitySettings
from tests.infra.cfn import as_list, flatten, function_by_name, resources, statements_of

STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}


def _consumers(synthesized) -> list[FunctionDefinition]:
    return [d for d in synthesized.definitions if d.stream_source is not None]


def _table(synthesized) -> tuple[str, dict]:
    ((logical_id, table),) = resources(synthesized.raw("data"), "AWS::DynamoDB::Table").items()
    return logical_id, table


def _stream_export(synthesized) -> str:
    """The Data stack's export of the table's StreamArn: what the Api stack imports."""
    table_id, _ = _table(synthesized)
    (name,) = [
        output["Export"]["Name"]
        for output in synthesized.raw("data")["Outputs"].values()
        if output["Value"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    ]
    return name


def _mapping(synthesized, definition: FunctionDefinition) -> dict:
    template = synthesized.raw("api")
    function_id, _ = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
    (mapping,) = [
        m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return mapping


def _queue(synthesized, definition: FunctionDefinition) -> tuple[str, dict]:
    name = f"{synthesized.config.name_prefix}-{definition.name}-dlq"
    (found,) = [
        (lid, q["Properties"])
        for lid, q in resources(synthesized.raw("api"), "AWS::SQS::Queue").items()
        if q["Properties"].get("QueueName") == name
    ]
    return found


def _async_queue_ids(synthesized) -> list[str]:
    """The queues of failed asynchronous invocations, which a role may also send to."""
    queues = resources(synthesized.raw("api"), "AWS::SQS::Queue").items()
    return [lid for lid, q in queues if q["Properties"]["QueueName"].endswith("-async-dlq")]


def _role_actions(synthesized, definition: FunctionDefinition) -> dict[str, list[str]]:
    template = synthesized.raw("api")
    _, fn = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
    grouped: dict[str, list[str]] = {}
    for statement in statements_of(template, fn["Properties"]["Role"]["Fn::GetAtt"][0]):
        for action in as_list(statement["Action"]):
            grouped.setdefault(action, []).extend(flatten(r) for r in as_list(statement["Resource"]))
    return grouped


def test_the_table_streams_the_view_its_consumers_read(synthesized):
    _, table = _table(synthesized)
    view = table_stream_view_type(synthesized.definitions)
    assert view is not None
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": view}


def test_the_real_catalog_streams_new_images_to_the_post_turn_function_only(real):
    assert [d.name for d in _consumers(real)] == [COACH_CONVERSATION_POST_TURN.name]
    assert COACH_CONVERSATION_POST_TURN.stream_source.view_type == "NEW_IMAGE"
    assert len(resources(real.raw("api"), "AWS::Lambda::EventSourceMapping")) == 1


def test_each_stream_source_is_one_mapping_with_the_catalogs_settings(synthesized):
    mappings = resources(synthesized.raw("api"), "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(_consumers(synthesized))
    for definition in _consumers(synthesized):
        source = definition.stream_source
        mapping = _mapping(synthesized, definition)
        queue_id, _ = _queue(synthesized, definition)
        assert mapping["EventSourceArn"] == {"Fn::ImportValue": _stream_export(synthesized)}
        assert [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]] == [source.filter_pattern()]
        assert mapping["BatchSize"] == source.batch_size
        assert mapping["BisectBatchOnFunctionError"] is source.bisect_on_error
        assert mapping["MaximumRetryAttempts"] == source.retry_attempts >= 0  # bounded: never -1
        assert mapping["MaximumRecordAgeInSeconds"] == source.max_record_age_seconds
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["StartingPosition"] == source.starting_position
        assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
        assert mapping.get("Enabled", True) is True


def test_the_post_turn_mapping_takes_inserted_outbox_items_in_small_batches(real):
    mapping = _mapping(real, COACH_CONVERSATION_POST_TURN)
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": [POST_TURN_ITEM_TYPE]}}}}
    assert POST_TURN_ITEM_TYPE == "post-turn-job"
    assert mapping["BatchSize"] <= 5
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 5
    assert mapping["MaximumRecordAgeInSeconds"] <= STREAM_RETENTION_SECONDS


def test_the_dead_letter_queue_is_named_encrypted_tls_only_kept_and_alarmed(synthesized):
    template = synthesized.raw("api")
    for definition in _consumers(synthesized):
        queue_id, queue = _queue(synthesized, definition)
        assert queue["SqsManagedSseEnabled"] is True
        assert queue["MessageRetentionPeriod"] == definition.stream_source.dead_letter_retention_days * 86400
        (policy,) = [
            p["Properties"]["PolicyDocument"]
            for p in resources(template, "AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [{"Ref": queue_id}]
        ]
        (deny,) = policy["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        (alarm,) = [
            a["Properties"]
            for a in resources(template, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Dimensions")
            == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        ]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmName"] == f"{queue['QueueName']}-not-empty"


def test_only_a_stream_consumers_role_reads_the_stream_and_sends_to_its_queue(synthesized):
    stream = f"<import:{_stream_export(synthesized)}>"
    for definition in synthesized.definitions:
        grouped = _role_actions(synthesized, definition)
        stream_grants = {a: r for a, r in grouped.items() if a in STREAM_ACTIONS | {"dynamodb:ListStreams"}}
        async_queues = {f"<{lid}.Arn>" for lid in _async_queue_ids(synthesized)}  # tests/infra/test_async_invoke.py
        sqs_grants = {
            a: rs
            for a, r in grouped.items()
            if a.startswith("sqs:") and (rs := [x for x in r if x not in async_queues])
        }
        if definition.stream_source is None:
            assert not stream_grants and not sqs_grants, definition.name
            continue
        assert {a: r for a, r in stream_grants.items() if a in STREAM_ACTIONS} == {a: [stream] for a in STREAM_ACTIONS}
        assert stream_grants["dynamodb:ListStreams"] == ["*"]  # IAM has no resource for it
        queue_id, _ = _queue(synthesized, definition)
        assert set(sqs_grants) == {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
        assert all(r == [f"<{queue_id}.Arn>"] for r in sqs_grants.values())


def test_the_conversation_roles_can_no_longer_invoke_the_post_turn_function(real):
    template = real.raw("api")
    post_turn = f"{real.config.name_prefix}-{COACH_CONVERSATION_POST_TURN.name}"
    for definition in (STREAM_COACH_CONVERSATION, SEND_COACH_CONVERSATION_MESSAGE):
        assert definition.invokes == ()
        assert "lambda:InvokeFunction" not in _role_actions(real, definition), definition.name
        _, fn = function_by_name(template, f"{real.config.name_prefix}-{definition.name}")
        variables = fn["Properties"]["Environment"]["Variables"]
        assert function_name_variable(COACH_CONVERSATION_POST_TURN.name) not in variables
    # Nobody invokes it by name any more: no role names it, no function is told its name.
    for definition in real.definitions:
        invokes = _role_actions(real, definition).get("lambda:InvokeFunction", [])
        assert not any(arn.endswith(f":{post_turn}") for arn in invokes), definition.name


def test_the_post_turn_time_budget_counts_a_batch_and_the_mappings_retries():
    definition = COACH_CONVERSATION_POST_TURN
    source = definition.stream_source
    assert source.attempts_per_record == 1 + 1 + source.retry_attempts  # a batch of 2 splits once
    worst = record_worst_case(definition)
    assert worst == source.attempts_per_record * definition.timeout_seconds <= source.max_record_age_seconds
    too_old = replace(definition, stream_source=replace(source, max_record_age_seconds=STREAM_RETENTION_SECONDS + 1))
    with pytest.raises(TimeBudgetError, match="retention"):
        record_worst_case(too_old)
    cut_short = replace(definition, stream_source=replace(source, max_record_age_seconds=600))
    with pytest.raises(TimeBudgetError, match="cut the retries short"):
        record_worst_case(cut_short)
    assert TableStreamSource("x", batch_size=1).attempts_per_record == 1 + 3  # nothing to split
    assert TableStreamSource("x", batch_size=5).per_batch((("dynamodb", 2),)) == (("dynamodb", 10),)


WORKER = FunctionDefinition("w", "w", False, settings=ModelWorkerSettings, table_actions=("PutItem",))


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        (
            (
                FunctionDefinition(
                    "a", "a", False, settings=ObservabilitySettings, stream_source=TableStreamSource("x")
                ),
            ),
            "needs a settings model with the table",
        ),
        ((replace(WORKER, stream_source=TableStreamSource("")),), "item type"),
        ((replace(WORKER, stream_source=TableStreamSource("x", retry_attempts=-1)),), "bounded"),
        ((replace(WORKER, stream_source=TableStreamSource("x", batch_size=0)),), "batch_size"),
        ((replace(WORKER, stream_source=TableStreamSource("x", max_record_age_seconds=10)),), "max_record_age"),
        ((replace(WORKER, stream_source=TableStreamSource("x", view_type="KEYS_ONLY")),), "NewImage"),
        ((replace(WORKER, stream_source=TableStreamSource("x", starting_position="AT_TIMESTAMP")),), "starting"),
        ((replace(WORKER, stream_source=TableStreamSource("x", dead_letter_retention_days=15)),), "14"),
        (
            (
                replace(WORKER, stream_source=TableStreamSource("x")),
                replace(WORKER, name="v", stream_source=TableStreamSource("y", view_type="NEW_AND_OLD_IMAGES")),
            ),
            "different view types",
        ),
    ],
)
def test_stream_source_mistakes_fail_the_synth_clearly(definitions, message):
    with pytest.raises(CatalogError, match=message):
        check(definitions)


def test_no_stream_source_no_stream():
    assert table_stream_view_type([d for d in FUNCTIONS if d.stream_source is None]) is None
