"""Asynchronous invocations that fail every attempt: each function invoked asynchronously gets an
`EventInvokeConfig` from the catalog (retries, maximum event age, on-failure destination), and its role the one
send Lambda makes with it; a function without a destination function gets its own dead-letter queue, alarmed.
Checked on the real catalog (the coach build -> mark-coach-build-failed -> its queue) and the fake one."""

from __future__ import annotations

from functions.catalog import BUILD_COACH_FROM_SESSION, MARK_COACH_BUILD_FAILED
from infra.catalog_rules import async_invoke_config
from tests.infra.cfn import as_list, flatten, function_by_name, resources, statements_of


def _name(synthesized, catalog_name: str) -> str:
    return f"{synthesized.config.name_prefix}-{catalog_name}"


def _configs(synthesized) -> dict[str, dict]:
    """Each EventInvokeConfig's properties, by the logical id of its function."""
    found = {}
    for config in resources(synthesized.raw("api"), "AWS::Lambda::EventInvokeConfig").values():
        props = config["Properties"]
        assert props["FunctionName"]["Ref"] not in found, "one configuration per function"
        found[props["FunctionName"]["Ref"]] = props
    return found


def _send_actions(synthesized, catalog_name: str) -> dict[str, list[str]]:
    template = synthesized.raw("api")
    _, fn = function_by_name(template, _name(synthesized, catalog_name))
    grouped: dict[str, list[str]] = {}
    for statement in statements_of(template, fn["Properties"]["Role"]["Fn::GetAtt"][0]):
        for action in as_list(statement["Action"]):
            if action.startswith(("sqs:", "lambda:")):
                grouped.setdefault(action, []).extend(flatten(r) for r in as_list(statement["Resource"]))
    return grouped


def test_every_function_invoked_asynchronously_has_the_catalogs_retries_age_and_destination(synthesized):
    template = synthesized.raw("api")
    configs = _configs(synthesized)
    configured = []
    for definition in synthesized.definitions:
        wanted = async_invoke_config(definition, synthesized.definitions)
        function_id, _ = function_by_name(template, _name(synthesized, definition.name))
        if wanted is None:
            assert function_id not in configs, definition.name
            continue
        configured.append(function_id)
        props = configs[function_id]
        assert props["Qualifier"] == "$LATEST"
        assert props["MaximumRetryAttempts"] == wanted.retry_attempts
        assert props["MaximumEventAgeInSeconds"] == wanted.max_event_age_seconds
        assert set(props["DestinationConfig"]) == {"OnFailure"}
        (target_id, attribute) = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"]
        assert attribute == "Arn"
        target = template["Resources"][target_id]
        if wanted.on_failure_function is not None:
            assert target["Properties"]["FunctionName"] == _name(synthesized, wanted.on_failure_function)
            assert _send_actions(synthesized, definition.name).get("sqs:SendMessage") is None
        else:
            assert target["Type"] == "AWS::SQS::Queue"
            assert target["Properties"]["QueueName"] == f"{_name(synthesized, definition.name)}-async-dlq"
            # Lambda sends the record to the queue with the function's role: that send, nothing more.
            sends = _send_actions(synthesized, definition.name)
            assert f"<{target_id}.Arn>" in sends["sqs:SendMessage"]
            assert not [a for a, arns in sends.items() if a != "sqs:SendMessage" and f"<{target_id}.Arn>" in arns]
    assert sorted(configured) == sorted(configs)


def test_the_coach_build_hands_its_failures_to_mark_coach_build_failed(real):
    template = real.raw("api")
    builder_id, _ = function_by_name(template, _name(real, BUILD_COACH_FROM_SESSION.name))
    marker_id, marker = function_by_name(template, _name(real, MARK_COACH_BUILD_FAILED.name))
    props = _configs(real)[builder_id]
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [marker_id, "Arn"]}
    assert props["MaximumRetryAttempts"] == 2
    assert 900 <= props["MaximumEventAgeInSeconds"] <= 3600  # every attempt fits; a user hears within the hour
    # The builder's role invokes the marker by its unqualified ARN only (no `:*` versions or aliases).
    (invoked,) = _send_actions(real, BUILD_COACH_FROM_SESSION.name)["lambda:InvokeFunction"]
    assert invoked.endswith(f":function:{_name(real, MARK_COACH_BUILD_FAILED.name)}")
    # The marker needs the table (one conditional update, a read when its condition fails), no model.
    env = marker["Properties"]["Environment"]["Variables"]
    assert {"COACH_TABLE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)
    assert not [k for k in env if k.startswith("MODEL_")]
    statements = statements_of(template, marker["Properties"]["Role"]["Fn::GetAtt"][0])
    table = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert [sorted(as_list(s["Action"])) for s in table] == [["dynamodb:GetItem", "dynamodb:UpdateItem"]]
    assert not [s for s in statements if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]


def test_an_async_dead_letter_queue_is_encrypted_tls_only_kept_and_alarmed(synthesized):
    template = synthesized.raw("api")
    queues = {
        lid: q["Properties"]
        for lid, q in resources(template, "AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"].endswith("-async-dlq")
    }
    expected = [
        d
        for d in synthesized.definitions
        if (c := async_invoke_config(d, synthesized.definitions)) and not c.on_failure_function
    ]
    assert len(queues) == len(expected) >= 1
    for definition in expected:
        name = f"{_name(synthesized, definition.name)}-async-dlq"
        ((queue_id, queue),) = [(lid, q) for lid, q in queues.items() if q["QueueName"] == name]
        config = async_invoke_config(definition, synthesized.definitions)
        assert queue["SqsManagedSseEnabled"] is True
        assert queue["MessageRetentionPeriod"] == config.dead_letter_retention_days * 86400
        (policy,) = [
            p["Properties"]["PolicyDocument"]
            for p in resources(template, "AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [{"Ref": queue_id}]
        ]
        (deny,) = policy["Statement"]
        assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
        (alarm,) = [
            a["Properties"]
            for a in resources(template, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("AlarmName") == f"{name}-not-empty"
        ]
        assert alarm["Threshold"] == 1
        assert {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}} in alarm["Dimensions"]
