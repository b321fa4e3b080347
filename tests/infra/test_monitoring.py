"""Alarms and dashboard (infra/monitoring.py): what the template holds, and that it watches what the code emits.

The fidelity checks read the synthesized template, not the construct: every metric of the functions' own
namespace that an alarm or the dashboard names must be one the code emits (a literal metric name at an
emitting call in shared/ or functions/), and with exactly the namespace and dimensions that the real
`shared.observability` path prints as EMF when run with the environment the template gives the functions.
A metric with one dimension too many or too few is another metric to CloudWatch: its alarm would never fire.

The local stack has no CloudWatch: its functions print the same EMF lines to their logs, and nothing local
mirrors these resources.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra.monitoring import (
    FALLBACK_MIN_TURNS,
    FALLBACK_RATE_PERCENT,
    NEAR_BUDGET_SHARE,
    Thresholds,
    alarmed_error_codes,
    dashboard_name,
    topic_name,
)
from infra.time_budget import is_turn
from shared.http.errors import ERROR_STATUSES, error_metric_name
from tests.infra.cfn import flatten, refers_to, resources

REPO = Path(__file__).resolve().parents[2]
EMITTING_SOURCES = ("shared", "functions")
SERVICE_ENV, NAMESPACE_ENV = "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"


# --- readers ------------------------------------------------------------------------------------------------


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def _dashboard(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    props = dashboard["Properties"]
    return props["DashboardName"], json.loads(flatten(props["DashboardBody"]))


def _function_env(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        lid: f["Properties"]["Environment"]["Variables"]
        for lid, f in resources(template, "AWS::Lambda::Function").items()
    }


def _service(template: dict[str, Any]) -> tuple[str, str]:
    pairs = {(env[NAMESPACE_ENV], env[SERVICE_ENV]) for env in _function_env(template).values()}
    (pair,) = pairs
    return pair


def _alarm_metrics(alarm: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, dimensions) of every metric an alarm reads, plain or inside its metric math."""
    if "MetricName" in alarm:
        yield alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            yield (
                metric["Namespace"],
                metric["MetricName"],
                {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
            )


def _dashboard_metrics(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The dashboard's metric arrays: [namespace, name, dim, value, ..., {options}]."""
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            plain = [part for part in row if not isinstance(part, dict)]
            if len(plain) < 2:
                continue  # a math expression: its inputs are rows of their own
            namespace, name, *pairs = plain
            yield namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


def _used_custom_metrics(template: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, Any], ...]]]:
    namespace, _ = _service(template)
    found = list(_dashboard_metrics(_dashboard(template)[1]))
    for alarm in _alarms(template).values():
        found += list(_alarm_metrics(alarm))
    return {(ns, name, tuple(sorted(dims.items()))) for ns, name, dims in found if ns == namespace}


# --- what the code emits --------------------------------------------------------------------------------------


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """A module's top-level `NAME = "text"` constants (metric names are often named once, then used)."""
    found: dict[str, str] = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return found


def emitted_metric_names(root: Path = REPO) -> set[str]:
    """Every metric name the code can emit: the name given to `observe` (a literal, or a module constant of the
    project), a job worker's invalid-job metric, and one per contract code wherever `count_error` is called."""
    trees = [
        ast.parse(path.read_text(), filename=str(path))
        for folder in EMITTING_SOURCES
        for path in (root / folder).rglob("*.py")
    ]
    project: dict[str, str] = {}
    for tree in trees:
        project.update(_module_strings(tree))
    codes = sorted({s.code for s in ERROR_STATUSES.values()})
    names: set[str] = set()
    for tree in trees:
        known = {**project, **_module_strings(tree)}

        def text(node: ast.expr | None, known: dict[str, str] = known) -> str | None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return node.value
            return known.get(node.id) if isinstance(node, ast.Name) else None

        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _call_name(node)
            first = text(node.args[0]) if node.args else None
            if called == "observe" and first is not None:
                names.add(first)
            elif called == "count_error":
                names.update(error_metric_name(c) for c in ([first] if first else codes))
            elif called == "JobWorker":
                given = [k.value for k in node.keywords if k.arg == "invalid_metric"] + node.args[4:5]
                names.update(t for t in map(text, given) if t is not None)
    return names


EMIT = """
import json, sys
from types import SimpleNamespace
from shared.observability import count_error, lambda_entry, observe

names, codes = json.loads(sys.argv[1])
context = SimpleNamespace(
    function_name="f", function_version="$LATEST", memory_limit_in_mb=128, aws_request_id="r",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f", log_group_name="g", log_stream_name="s",
)

@lambda_entry
def handler(event, ctx):
    for name in names:
        observe(name, 1)
    for code in codes:
        count_error(code)

handler({}, context)
"""


def emf_metrics(environment: dict[str, str], names: list[str], codes: list[str]) -> dict[str, set[Any]]:
    """Run the real metrics path in a fresh interpreter with `environment` and read back its EMF lines:
    metric name -> the (namespace, dimensions) it went out with."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **environment}
    done = subprocess.run(
        [sys.executable, "-c", EMIT, json.dumps([names, codes])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    emitted: dict[str, set[Any]] = {}
    for line in done.stdout.splitlines():
        blob = json.loads(line) if line.startswith("{") else {}
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                for dimension_set in directive["Dimensions"]:
                    dims = tuple(sorted((key, blob[key]) for key in dimension_set))
                    emitted.setdefault(metric["Name"], set()).add((directive["Namespace"], dims))
    return emitted


# --- fidelity -------------------------------------------------------------------------------------------------


def test_every_custom_metric_watched_is_one_the_code_emits(synthesized):
    used = {name for _, name, _ in _used_custom_metrics(synthesized.raw("api"))}
    assert used, "no alarm or graph reads the functions' metrics"
    assert used - emitted_metric_names() == set()


def test_watched_metrics_have_exactly_the_namespace_and_dimensions_the_functions_emit(synthesized):
    template = synthesized.raw("api")
    used = _used_custom_metrics(template)
    error_names = {error_metric_name(s.code): s.code for s in ERROR_STATUSES.values()}
    names = sorted({name for _, name, _ in used if name not in error_names})
    codes = sorted({error_names[name] for _, name, _ in used if name in error_names})
    namespace, service = _service(template)
    emitted = emf_metrics({NAMESPACE_ENV: namespace, SERVICE_ENV: service}, names, codes)
    for ns, name, dims in used:
        assert (ns, dims) in emitted.get(name, set()), (name, ns, dims, emitted.get(name))


def test_the_scanner_sees_the_emitting_calls():
    """Known emitters of each kind: observe, deps.observe with a named constant, a worker's invalid-job metric,
    count_error."""
    names = emitted_metric_names()
    assert {
        "TimeToFirstToken",
        "Fallbacks",
        "PostTurnTaskFailures",
        "PostTurnInvalidJobs",
        "CoachBuildsFailed",
    } <= names
    assert error_metric_name("INTERNAL_ERROR") in names
    assert "NoSuchMetric" not in names


def test_a_dimension_the_code_does_not_emit_would_be_caught(real):
    """The EMF reader is a real check: the service name must match, and an extra dimension is another metric."""
    namespace, service = _service(real.raw("api"))
    emitted = emf_metrics({NAMESPACE_ENV: namespace, SERVICE_ENV: service}, ["Fallbacks"], [])
    assert emitted["Fallbacks"] == {(namespace, (("service", service),))}
    assert (namespace, (("service", "another-service"),)) not in emitted["Fallbacks"]
    assert (namespace, (("function", "x"), ("service", service))) not in emitted["Fallbacks"]


def test_lambda_metrics_name_functions_of_the_stack(synthesized):
    template = synthesized.raw("api")
    functions = set(resources(template, "AWS::Lambda::Function"))
    for alarm in _alarms(template).values():
        for namespace, _, dims in _alarm_metrics(alarm):
            if namespace == "AWS/Lambda":
                assert set(dims) == {"FunctionName"}
                assert any(refers_to(dims["FunctionName"], lid) for lid in functions), dims


# --- the template ---------------------------------------------------------------------------------------------


def _expected_names(synthesized) -> set[str]:
    prefix = synthesized.config.name_prefix
    fixed = {
        "time-to-first-token-p95",
        "stream-duration-p95",
        "fallback-rate",
        "post-turn-task-failures",
        "coach-builds-failed",
        "coach-build-handoff-failures",
        "rate-limit-unavailable",
    }
    fixed |= {f"errors-{c.lower().replace('_', '-')}" for c in alarmed_error_codes()}
    fixed |= {f"{d.name}-throttles" for d in synthesized.definitions}
    fixed |= {f"{d.name}-dlq-not-empty" for d in synthesized.definitions if d.stream_source is not None}
    return {f"{prefix}-{what}" for what in fixed}


def test_alarms_have_fixed_names_an_operator_can_find(synthesized):
    template: Template = synthesized.template("api")
    expected = _expected_names(synthesized)
    assert expected <= set(_alarms(synthesized.raw("api")))
    for name in expected:
        template.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": name})
    monitoring = [
        lid for lid in resources(synthesized.raw("api"), "AWS::CloudWatch::Alarm") if lid.startswith("Monitoring")
    ]
    turn_alarms, error_alarms, worker_alarms = 3, len(alarmed_error_codes()), 4
    throttles = len(synthesized.definitions)
    assert len(monitoring) == turn_alarms + error_alarms + worker_alarms + throttles


def test_alarm_names_are_unique(synthesized):
    """CloudWatch alarm names are unique per account and Region: a second one with the same name fails the deploy."""
    names = [a["Properties"]["AlarmName"] for a in resources(synthesized.raw("api"), "AWS::CloudWatch::Alarm").values()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_server_error_codes_are_alarmed_but_the_operators_switch_is_not():
    codes = alarmed_error_codes()
    assert {"INTERNAL_ERROR", "MODEL_UNAVAILABLE", "MODEL_STREAM_INTERRUPTED", "TIMEOUT"} <= set(codes)
    assert "STREAMING_DISABLED" not in codes
    assert all(s.status >= 500 for s in ERROR_STATUSES.values() if s.code in codes)


def test_thresholds_come_from_the_turns_budgets_in_the_template(synthesized):
    """The stream duration alarm sits at a share of the smallest STREAM_TIME_BUDGET_SECONDS the functions get."""
    template = synthesized.raw("api")
    alarms = _alarms(template)
    prefix = synthesized.config.name_prefix
    budgets = [
        float(env["STREAM_TIME_BUDGET_SECONDS"])
        for env in _function_env(template).values()
        if "STREAM_TIME_BUDGET_SECONDS" in env
    ]
    duration = alarms[f"{prefix}-stream-duration-p95"]
    assert duration["Threshold"] == round(NEAR_BUDGET_SHARE * min(budgets) * 1000)
    assert duration["ExtendedStatistic"] == "p95"
    assert duration["MetricName"] == "StreamDuration"
    assert duration["EvaluateLowSampleCountPercentile"] == "ignore"
    ttft = alarms[f"{prefix}-time-to-first-token-p95"]
    assert (ttft["Threshold"], ttft["ExtendedStatistic"]) == (15_000, "p95")  # SSE_KEEP_ALIVE_SECONDS' default
    for code in alarmed_error_codes():
        alarm = alarms[f"{prefix}-errors-{code.lower().replace('_', '-')}"]
        assert (alarm["MetricName"], alarm["Threshold"], alarm["Statistic"]) == (error_metric_name(code), 1, "Sum")
        assert code in alarm["AlarmDescription"]
    attempts = [d.stream_source.attempts_per_record for d in synthesized.definitions if d.stream_source]
    post_turn = alarms[f"{prefix}-post-turn-task-failures"]
    assert (post_turn["Threshold"], post_turn["ComparisonOperator"]) == (max(attempts), "GreaterThanThreshold")


def test_every_alarm_says_why_treats_missing_data_as_fine_and_notifies_the_topic(synthesized):
    template = synthesized.raw("api")
    (topic_id,) = resources(template, "AWS::SNS::Topic")
    for lid, resource in resources(template, "AWS::CloudWatch::Alarm").items():
        alarm, name = resource["Properties"], lid
        assert len(alarm["AlarmDescription"]) > 60, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert [a == {"Ref": topic_id} for a in alarm["AlarmActions"]] == [True], name
        assert [a == {"Ref": topic_id} for a in alarm["OKActions"]] == [True], name


def test_fallback_rate_is_fallbacks_over_the_turn_functions_invocations(synthesized):
    template = synthesized.raw("api")
    alarm = _alarms(template)[f"{synthesized.config.name_prefix}-fallback-rate"]
    queries = alarm["Metrics"]
    (expression,) = [q for q in queries if "Expression" in q]
    assert expression["ReturnData"] is True
    assert all(q.get("ReturnData") is False for q in queries if q is not expression)
    assert f">= {FALLBACK_MIN_TURNS}" in expression["Expression"]
    assert alarm["Threshold"] == FALLBACK_RATE_PERCENT
    read = {name: dims for _, name, dims in _alarm_metrics(alarm) if name != "Invocations"}
    assert set(read) == {"Fallbacks"}
    invoked = [dims["FunctionName"] for _, name, dims in _alarm_metrics(alarm) if name == "Invocations"]
    turns = [d for d in synthesized.definitions if is_turn(d)]
    assert len(invoked) == len(turns)
    for definition in turns:
        assert any(refers_to(i, definition.logical_id) for i in invoked), definition.name


def test_the_alarm_topic_is_encrypted_tls_only_and_open_to_cloudwatch_alarms_of_this_account(synthesized):
    template: Template = synthesized.template("api")
    raw = synthesized.raw("api")
    (key_id,) = resources(raw, "AWS::KMS::Key")
    template.has_resource_properties(
        "AWS::SNS::Topic",
        {"TopicName": topic_name(synthesized.config.name_prefix), "KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}},
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    key_policy = raw["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)
    (policy,) = resources(raw, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and all(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert flatten(allow["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(
        f":alarm:{synthesized.config.name_prefix}-*"
    )


def test_one_dashboard_graphs_the_watched_metrics(synthesized):
    template = synthesized.raw("api")
    name, body = _dashboard(template)
    assert name == dashboard_name(synthesized.config.name_prefix)
    titles = {w["properties"].get("title") for w in body["widgets"]}
    assert {
        "Alarms",
        "Time to first token (ms)",
        "Fallbacks",
        "Errors by contract code",
        "Throttles",
        "Concurrent executions (max)",
        "Turn duration (ms)",
        "Post-turn and coach-build failures",
        "Dead-letter queue depth (max)",
    } <= titles
    (status,) = [w for w in body["widgets"] if w["properties"].get("title") == "Alarms"]
    assert len(status["properties"]["alarms"]) == len(resources(template, "AWS::CloudWatch::Alarm"))
    graphed = {(name, row[-1].get("stat") if isinstance(row[-1], dict) else None) for name, row in _rows(body)}
    assert {("TimeToFirstToken", "p50"), ("TimeToFirstToken", "p95"), ("StreamDuration", "p95")} <= graphed
    names = {name for name, _ in graphed}
    assert {error_metric_name(s.code) for s in ERROR_STATUSES.values()} <= names
    assert {"Throttles", "ConcurrentExecutions", "ApproximateNumberOfMessagesVisible", "CoachBuildsFailed"} <= names


def _rows(body: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            plain = [p for p in row if not isinstance(p, dict)]
            if len(plain) >= 2:
                yield plain[1], row


def test_a_stack_without_turn_functions_has_no_turn_thresholds():
    """A stack of other functions (the bench's handlers) has no turn alarms, rather than made-up ones."""
    thresholds = Thresholds.of([], 240.0)
    assert (thresholds.time_to_first_token_ms, thresholds.stream_duration_ms) == (None, None)
    assert thresholds.post_turn_failures == 1
