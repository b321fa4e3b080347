"""Least privilege: each function's role holds exactly what its catalog entry declares, never `*`."""

from __future__ import annotations

import re

from infra.api_stack import INDEX_ACTIONS, TABLE_ACTIONS
from infra.bedrock import INVOKE_ACTIONS
from shared.store.schema import COACH_TABLE
from tests.infra.cfn import as_list, flatten, function_by_name, resources, statements_of

SCOPED_SERVICES = ("dynamodb:", "bedrock:", "s3:", "lambda:", "logs:", "sqs:")
# Actions IAM authorizes on no resource of their own: a policy can only name "*" for them.
NO_RESOURCE_LEVEL = ("dynamodb:ListStreams",)
STREAM_READ_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}


def _role_statements(synthesized, definition):
    template = synthesized.raw("api")
    _, fn = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return statements_of(template, role_id)


def _by_action(statements):
    grouped: dict[str, list[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            grouped.setdefault(action, []).extend(flatten(r) for r in as_list(statement["Resource"]))
    return grouped


def test_no_wildcard_resource_or_action_anywhere(synthesized):
    for which in ("data", "auth", "api"):
        template = synthesized.raw(which)
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = as_list(statement["Action"])
                assert all("*" not in a for a in actions), actions
                if any(a.startswith(SCOPED_SERVICES) and a not in NO_RESOURCE_LEVEL for a in actions):
                    assert "*" not in as_list(statement["Resource"]), statement


def test_no_aws_managed_policies_on_function_roles(synthesized):
    for role in resources(synthesized.raw("api"), "AWS::IAM::Role").values():
        assert not role["Properties"].get("ManagedPolicyArns"), role


def test_table_actions_on_the_table_and_its_indexes_only(synthesized):
    for definition in synthesized.definitions:
        grouped = _by_action(_role_statements(synthesized, definition))
        stream = STREAM_READ_ACTIONS | set(NO_RESOURCE_LEVEL)
        dynamodb = {a: r for a, r in grouped.items() if a.startswith("dynamodb:") and a not in stream}
        if not definition.uses_table:
            assert not dynamodb, definition.name
            continue
        declared = {f"dynamodb:{name}" for name in definition.table_actions}
        assert set(dynamodb) == declared <= set(TABLE_ACTIONS), definition.name
        indexes = {f"/index/{name}" for name in COACH_TABLE.indexes}
        for action, arns in dynamodb.items():
            table_arns = [a for a in arns if "/index/" not in a]
            index_arns = [a for a in arns if "/index/" in a]
            assert len(table_arns) == 1 and "CoachTable" in table_arns[0], (action, arns)
            if action in INDEX_ACTIONS:
                assert {a[a.index("/index/") :] for a in index_arns} == indexes
            else:
                assert not index_arns, (action, arns)


def test_bedrock_only_the_configured_models(synthesized):
    config = synthesized.config
    ids = {"reply": config.model_id_reply, "side": config.model_id_side}
    actions = {"converse": "bedrock:InvokeModel", "stream": "bedrock:InvokeModelWithResponseStream"}
    for definition in synthesized.definitions:
        grouped = _by_action(_role_statements(synthesized, definition))
        bedrock = {a: r for a, r in grouped.items() if a.startswith("bedrock:")}
        if not definition.uses_models:
            assert not bedrock
            continue
        assert set(bedrock) == {actions[call] for _, call in definition.model_calls} <= set(INVOKE_ACTIONS)
        for action, arns in bedrock.items():
            # Only the models the function calls that way: a worker on the side model cannot reach the reply's.
            models = {ids[model] for model, call in definition.model_calls if actions[call] == action}
            for arn in arns:
                match = re.search(r":(inference-profile|foundation-model)/(.+)$", arn)
                assert match is not None, arn
                kind, model = match.groups()
                if kind == "inference-profile":
                    assert model in models
                else:
                    assert any(m == model or m.endswith("." + model) for m in models), arn
            profiles = [a for a in arns if ":inference-profile/" in a]
            assert all("<AWS::Region>:<AWS::AccountId>" in p for p in profiles), profiles


def test_uploads_read_only_under_the_user_uploads_prefix(synthesized):
    for definition in synthesized.definitions:
        grouped = _by_action(_role_statements(synthesized, definition))
        s3 = {a: r for a, r in grouped.items() if a.startswith("s3:")}
        if not definition.reads_uploads:
            assert not s3
            continue
        assert list(s3) == ["s3:GetObject"]
        assert all(arn.endswith("/user-uploads/*") for arn in s3["s3:GetObject"])


def test_invoke_only_the_declared_async_targets(synthesized):
    prefix = synthesized.config.name_prefix
    for definition in synthesized.definitions:
        grouped = _by_action(_role_statements(synthesized, definition))
        targets = grouped.get("lambda:InvokeFunction", [])
        on_failure = definition.async_invoke.on_failure_function if definition.async_invoke else None
        # Lambda delivers a failed async invocation's record to its on-failure function with this role.
        expected = {f"function:{prefix}-{t}" for t in (*definition.invokes, *([on_failure] if on_failure else []))}
        assert {t.rsplit(":", 2)[-2] + ":" + t.rsplit(":", 1)[-1] for t in targets} == expected


def test_logs_only_to_its_own_log_group(synthesized):
    template = synthesized.raw("api")
    for definition in synthesized.definitions:
        _, fn = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
        group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        grouped = _by_action(_role_statements(synthesized, definition))
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert grouped[action] == [f"<{group}.Arn>"]


def test_active_tracing_with_only_the_two_xray_writes_it_needs(synthesized):
    """Lambda traces every invocation itself (no SDK in the function) and sends the segments with the
    function's role: that role may write trace segments and telemetry, on `*` as X-Ray requires, and
    nothing else of X-Ray."""
    template = synthesized.raw("api")
    for definition in synthesized.definitions:
        _, fn = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}, definition.name
        grouped = _by_action(_role_statements(synthesized, definition))
        xray = {action: arns for action, arns in grouped.items() if action.startswith("xray:")}
        assert xray == {"xray:PutTraceSegments": ["*"], "xray:PutTelemetryRecords": ["*"]}, definition.name
