"""Every local function runs with what `cdk synth` gives it: read from its worker process, compared with an
independent synth of the same app.

Each worker's environment, as the kernel holds it, must equal its function's template environment, key for
key, with only resource references resolved to the local resources (and `/var/task` read as the task root),
plus exactly what Lambda itself provides and the SDK endpoints of the local doubles: no other difference. Name, handler, timeout
and memory are compared the same way.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import botocore
import pytest

from local.deployed import TASK_ROOT
from local.functions import REPO_ROOT
from local.stack import TABLE_NAME, LocalStack
from shared.aws_clients import SDK_SERVICES
from shared.settings import SDK_ENDPOINT_VARIABLES
from tests.fixtures.cdk_synth import Synthesized, synthesize
from tests.fixtures.deployed_runtime import ProcessView, child_processes

# What Lambda's runtime sets for a function itself (not the template), and what the local runtime adds for
# the same purpose: the Region, the role's credentials, the Runtime API, the handler and the task root.
PROVIDED_BY_LAMBDA = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "PYTHONNOUSERSITE",
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",  # the exec wrapper puts the task root first, as in Lambda
    "PWD",
    "OLDPWD",  # the exec wrapper is a shell script that changes to the task root
    "SHLVL",
    "_",
}


@pytest.fixture(scope="module")
def synthesized(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The same app, synthesized the way the infra tests do, not through the local stack's own reader."""
    return synthesize(tmp_path_factory.mktemp("fidelity"), stack.definitions, environ=stack.deploy_environ)


def _workers(stack: LocalStack) -> dict[str, list[ProcessView]]:
    addresses = {
        environment.server.address: name
        for name, function in stack.functions.items()
        for environment in function.environments
    }
    found: dict[str, list[ProcessView]] = {}
    for view in child_processes(os.getpid()):
        name = addresses.get(view.environment.get("AWS_LAMBDA_RUNTIME_API", ""))
        if name is not None:
            found.setdefault(name, []).append(view)
    return found


def test_every_worker_runs_with_its_templates_name_handler_limits_and_environment(stack, synthesized):
    resources = stack.resource_values()
    workers = _workers(stack)
    for definition in stack.definitions:
        template = synthesized.function(definition.name)["Properties"]
        if not workers.get(definition.name):
            # Only a function whose init failed waits without a worker, until its next invocation.
            environments = stack.functions[definition.name].environments
            assert all(e.server.last_init_error for e in environments), f"{definition.name}: no live worker"
            continue
        for worker in workers[definition.name]:
            env = worker.environment
            assert env["AWS_LAMBDA_FUNCTION_NAME"] == template["FunctionName"]
            assert env["_HANDLER"] == template["Handler"]
            assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(template["MemorySize"])
            assert stack.functions[definition.name].spec.timeout_seconds == template["Timeout"]
            task_root = env["LAMBDA_TASK_ROOT"]
            expected = {}
            for name, value in template["Environment"]["Variables"].items():
                if isinstance(value, str):
                    expected[name] = (
                        value.replace(TASK_ROOT, task_root, 1) if value.startswith(TASK_ROOT + "/") else value
                    )
                else:
                    expected[name] = resources[name]  # a resource reference: only these may be local
            overrides = {k: v for k, v in stack.extra_environment.items()}
            declared = set(SDK_ENDPOINT_VARIABLES) | PROVIDED_BY_LAMBDA
            template_part = {k: v for k, v in env.items() if k in expected and k not in overrides}
            assert template_part == {k: v for k, v in expected.items() if k not in overrides}, definition.name
            extra = set(env) - set(expected) - declared - set(overrides)
            assert extra == set(), f"{definition.name}: variables the template does not give: {sorted(extra)}"
            assert {k: env[k] for k in overrides if k in env} == {k: v for k, v in overrides.items() if k in env}


def test_where_the_local_workers_differ_from_the_deployed_ones_python_and_the_sdks_models(stack, synthesized):
    """The differences kept on purpose, stated: the local workers run the repository's code on this venv's
    Python, with botocore's every model, where the template deploys the bundled asset on its runtime's Python
    with the listed services' models only. What covers each: `test_deployed_asset.py` runs the assets on the
    deployed Python (a real turn of the conversation's, every function's init), and `make_client` refuses a
    service the asset lacks here too (`test_sdk_services.py`)."""
    runtimes = {synthesized.function(d.name)["Properties"]["Runtime"] for d in stack.definitions}
    assert runtimes == {"python3.13"}
    workers = [worker for views in _workers(stack).values() for worker in views]
    assert workers
    for worker in workers:
        assert worker.executable == Path(sys.executable).resolve(), worker.command_line
        assert worker.environment["LAMBDA_TASK_ROOT"] == str(REPO_ROOT)
    models = Path(botocore.__file__).parent / "data"
    assert {p.name for p in models.iterdir() if p.is_dir()} > SDK_SERVICES, "the venv's botocore is whole"


def test_the_local_stack_reads_the_same_templates_it_would_deploy(stack, synthesized):
    """The stack's own reader and the infra tests' synth agree on every function: one truth, `cdk synth`."""
    assert stack.deployed is not None
    for definition in stack.definitions:
        props = synthesized.function(definition.name)["Properties"]
        deployed = stack.deployed.function(definition.name)
        assert (deployed.name, deployed.handler, deployed.timeout_seconds, deployed.memory_mb) == (
            props["FunctionName"],
            props["Handler"],
            props["Timeout"],
            props["MemorySize"],
        )
        assert deployed.environment == props["Environment"]["Variables"]
        assert deployed.runtime == props["Runtime"] == "python3.13"


def test_the_table_stream_queues_and_stream_mappings_are_the_templates(stack, synthesized):
    """The local table streams what the template's table streams, every queue of the templates exists with
    its settings, and each local poller runs a mapping of the templates with exactly its settings."""
    (table,) = [r for r in synthesized.raw("data")["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    described = stack.dynamodb.client().describe_table(TableName=TABLE_NAME)["Table"]
    stream = table["Properties"].get("StreamSpecification")
    assert described.get("StreamSpecification") == (
        {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]} if stream else None
    )
    api = synthesized.raw("api")["Resources"]
    sqs = stack.dynamodb.client("sqs")
    for queue in (r["Properties"] for r in api.values() if r["Type"] == "AWS::SQS::Queue"):
        url = sqs.get_queue_url(QueueName=queue["QueueName"])["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["MessageRetentionPeriod"] == str(queue["MessageRetentionPeriod"])
        assert attributes["SqsManagedSseEnabled"] == str(queue["SqsManagedSseEnabled"]).lower()
    mappings = [r["Properties"] for r in api.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(stack.stream_pollers) == len(mappings)
    names = {lid: r["Properties"]["FunctionName"] for lid, r in api.items() if r["Type"] == "AWS::Lambda::Function"}
    for poller in stack.stream_pollers:
        local = poller.mapping
        (template,) = [m for m in mappings if names[m["FunctionName"]["Ref"]] == local.function_name]
        assert local.filters == tuple(json.loads(f["Pattern"]) for f in template["FilterCriteria"]["Filters"])
        assert (local.batch_size, local.maximum_retry_attempts, local.maximum_record_age_seconds) == (
            template["BatchSize"],
            template["MaximumRetryAttempts"],
            template["MaximumRecordAgeInSeconds"],
        )
        assert local.bisect_batch_on_function_error is template["BisectBatchOnFunctionError"]
        assert local.report_batch_item_failures is ("ReportBatchItemFailures" in template["FunctionResponseTypes"])
        assert local.starting_position == template["StartingPosition"]
        queue_id = template["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        assert local.on_failure_destination.endswith(":" + api[queue_id]["Properties"]["QueueName"])
        assert poller.stream_arn is not None and poller.stream_arn == described["LatestStreamArn"]


APPCONFIG_NAMED = {
    "AWS::AppConfig::Application": "APPCONFIG_APPLICATION",
    "AWS::AppConfig::Environment": "APPCONFIG_ENVIRONMENT",
    "AWS::AppConfig::ConfigurationProfile": "APPCONFIG_FLAGS_PROFILE",
}


def test_the_local_appconfig_serves_the_templates_profile_where_the_functions_look(stack, synthesized):
    """The flag readers are told the template's AppConfig names, and the local AppConfig Data serves exactly
    that application, environment and profile, starting from the template's first version."""
    api = synthesized.raw("api")["Resources"]
    names = {variable: r["Properties"]["Name"] for r in api.values() if (variable := APPCONFIG_NAMED.get(r["Type"]))}
    (version,) = [r["Properties"] for r in api.values() if r["Type"] == "AWS::AppConfig::HostedConfigurationVersion"]
    assert stack.appconfig is not None
    profile = stack.appconfig.flags.profile
    served = {"APPCONFIG_APPLICATION": profile.application, "APPCONFIG_ENVIRONMENT": profile.environment}
    assert {**served, "APPCONFIG_FLAGS_PROFILE": profile.profile} == names
    assert profile.content == version["Content"]
    readers = 0
    for definition in stack.definitions:
        template_env = synthesized.function(definition.name)["Properties"]["Environment"]["Variables"]
        if not template_env.get("APPCONFIG_APPLICATION"):
            continue  # not a flag reader, or one that opts out of AppConfig (a test function)
        readers += 1
        assert {name: template_env[name] for name in names} == names, definition.name
        local_env = stack.functions[definition.name].spec.environment
        assert local_env["AWS_ENDPOINT_URL_APPCONFIGDATA"] == stack.appconfig.url
    assert readers > 0


def test_async_invocations_follow_the_templates_retries_event_age_and_on_failure_destination(stack, synthesized):
    """The local Invoke API runs each function's `Event` invocations with its template's `EventInvokeConfig`,
    and sends the record of one that failed them all to the same destination (a function, or a queue)."""
    api = synthesized.raw("api")["Resources"]
    names = {lid: r["Properties"]["FunctionName"] for lid, r in api.items() if r["Type"] == "AWS::Lambda::Function"}
    templates = [r["Properties"] for r in api.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert stack.lambda_api is not None
    local = stack.lambda_api.async_configs
    assert len(local) == len(templates) >= 1
    for template in templates:
        config = local[names[template["FunctionName"]["Ref"]]]
        assert (config.retry_attempts, config.max_event_age_seconds) == (
            template["MaximumRetryAttempts"],
            template["MaximumEventAgeInSeconds"],
        )
        target_id = template["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        if target_id in names:
            assert config.on_failure is not None and config.on_failure.endswith(f":function:{names[target_id]}")
        else:
            assert config.on_failure is not None and config.on_failure.startswith("arn:aws:sqs:")
            assert config.on_failure.endswith(":" + api[target_id]["Properties"]["QueueName"])


def test_every_function_that_spends_the_writes_budget_runs_with_one_limit(stack, synthesized):
    """Turns (streamed or not) and REST writes spend one item per user (`shared.store.ports.WRITES_BUDGET`), a log
    of the last `RATE_LIMIT_PER_MINUTE` admissions: one limit in every template, and locally the same in every
    function, or two functions would read the same log at two lengths."""
    templates, local = {}, {}
    for definition in stack.definitions:
        template_env = synthesized.function(definition.name)["Properties"]["Environment"]["Variables"]
        if "RATE_LIMIT_PER_MINUTE" in template_env:
            templates[definition.name] = template_env["RATE_LIMIT_PER_MINUTE"]
            local[definition.name] = stack.functions[definition.name].spec.environment["RATE_LIMIT_PER_MINUTE"]
    assert {"stream-coach-conversation", "send-coach-conversation-message", "coach-api"} <= set(templates)
    assert len(set(templates.values())) == 1, templates
    assert len(set(local.values())) == 1, local
