"""Lambda Managed Instances (`managedInstances=true`, infra/managed_instances.py): the Compute stack, the
streaming functions on its capacity provider behind a `live` alias, and a default synth without any of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint

from functions.catalog import FUNCTIONS, FunctionDefinition
from infra.catalog_rules import CatalogError
from infra.config import MI_MIN_MEMORY_MB, ConfigError, InfraConfig
from infra.functions import LIVE_ALIAS
from infra.managed_instances import FUNCTION_NAME_SUFFIX, OPERATOR_POLICY
from tests.fixtures.cdk_synth import Synthesized, synthesize
from tests.infra.cfn import flatten, refers_to, resources, statements_of

TUNED = {
    "stackPrefix": "CoachMi",
    "namePrefix": "coach-mi",
    "architecture": "x86_64",
    "managedInstancesConcurrency": "64",
    "managedInstancesMemoryPerVCpu": "8",
    "managedInstancesMaxVCpu": "48",
}


@pytest.fixture(scope="module")
def mi(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The real catalog with `-c managedInstances=true`, everything else as cdk.json gives it."""
    return synthesize(tmp_path_factory.mktemp("cdk-mi"), FUNCTIONS, managedInstances="true")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Managed Instances with every setting away from its default, given as context."""
    return synthesize(tmp_path_factory.mktemp("cdk-mi-tuned"), FUNCTIONS, managedInstances=True, **TUNED)


@pytest.fixture(params=["mi", "tuned"])
def on(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)


def _compute(synthesized: Synthesized) -> dict[str, Any]:
    stack = synthesized.built.compute
    assert stack is not None
    return synthesized.assembly.get_stack_by_name(stack.stack_name).template


def _one(template: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = resources(template, type_).items()
    return logical_id, resource


def _function(synthesized: Synthesized, definition: FunctionDefinition) -> tuple[str, dict[str, Any]]:
    """A catalog entry's function, by the logical id every synth gives it (its name differs on MI)."""
    template = synthesized.raw("api")
    return definition.logical_id, template["Resources"][definition.logical_id]


def _streaming(synthesized: Synthesized) -> list[FunctionDefinition]:
    return [d for d in synthesized.definitions if d.streaming]


def _alias_of(template: dict[str, Any], function_id: str) -> tuple[str, dict[str, Any]]:
    [(alias_id, alias)] = [
        (k, v)
        for k, v in resources(template, "AWS::Lambda::Alias").items()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return alias_id, alias


def _import_of(value: Any) -> str:
    assert set(value) == {"Fn::ImportValue"}, value
    return value["Fn::ImportValue"]


# --- switched off: the default synth ---------------------------------------------------------------------


def test_default_synth_has_no_compute_stack_no_vpc_and_unqualified_urls(real):
    assert real.config.managed_instances is False
    assert real.built.compute is None
    assert [s.stack_name for s in real.built.stacks] == ["CoachStreamData", "CoachStreamAuth", "CoachStreamApi"]
    assert len(real.template_files()) == 3
    for path in real.template_files():
        types = {r["Type"] for r in json.loads(path.read_text())["Resources"].values()}
        assert "AWS::Lambda::CapacityProvider" not in types, path.name
        assert not {t for t in types if t.startswith("AWS::EC2::")}, path.name
        assert not types & {"AWS::Lambda::Alias", "AWS::Lambda::Version"}, path.name
    api = real.raw("api")
    for fn in resources(api, "AWS::Lambda::Function").values():
        assert "CapacityProviderConfig" not in fn["Properties"]
        assert "LogFormat" not in fn["Properties"]["LoggingConfig"]
    for definition in _streaming(real):
        assert api["Resources"][definition.logical_id]["Properties"]["FunctionName"] == (
            f"{real.config.name_prefix}-{definition.name}"
        )
    for url in resources(api, "AWS::Lambda::Url").values():
        assert "Qualifier" not in url["Properties"]
        assert list(url["Properties"]["TargetFunctionArn"]) == ["Fn::GetAtt"]


# --- the Compute stack -------------------------------------------------------------------------------------


def test_compute_stack_sits_between_auth_and_api(on):
    prefix = on.config.stack_prefix
    assert [s.stack_name for s in on.built.stacks] == [
        f"{prefix}Data",
        f"{prefix}Auth",
        f"{prefix}Compute",
        f"{prefix}Api",
    ]
    assert len(on.template_files()) == 4


def test_vpc_has_two_zones_one_nat_gateway_gateway_endpoints_and_flow_logs(on):
    compute = _compute(on)
    vpc_id, _ = _one(compute, "AWS::EC2::VPC")
    assert len(resources(compute, "AWS::EC2::NatGateway")) == 1
    subnets = resources(compute, "AWS::EC2::Subnet")
    assert len(subnets) == 4  # a public (NAT) and a private subnet in each of two zones
    zones = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()}
    assert len(zones) == 2
    endpoints = {
        flatten(e["Properties"]["ServiceName"]): e["Properties"]
        for e in resources(compute, "AWS::EC2::VPCEndpoint").values()
    }
    assert {name.rsplit(".", 1)[1] for name in endpoints} == {"dynamodb", "s3"}
    for endpoint in endpoints.values():
        assert endpoint["VpcEndpointType"] == "Gateway"
        assert refers_to(endpoint["VpcId"], vpc_id)
    _, flow_log = _one(compute, "AWS::EC2::FlowLog")
    assert flow_log["Properties"]["ResourceId"] == {"Ref": vpc_id}
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    group = flow_log["Properties"]["LogGroupName"]["Ref"]
    assert compute["Resources"][group]["Properties"]["RetentionInDays"] == on.config.log_retention_days


def _private_subnets(compute: dict[str, Any]) -> set[str]:
    """Subnets whose default route leaves through the NAT gateway."""
    nat_routes = {
        r["Properties"]["RouteTableId"]["Ref"]
        for r in resources(compute, "AWS::EC2::Route").values()
        if "NatGatewayId" in r["Properties"]
    }
    return {
        a["Properties"]["SubnetId"]["Ref"]
        for a in resources(compute, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["RouteTableId"]["Ref"] in nat_routes
    }


def test_capacity_provider_runs_in_the_private_subnets_behind_an_outbound_only_security_group(on):
    compute = _compute(on)
    _, provider = _one(compute, "AWS::Lambda::CapacityProvider")
    vpc = provider["Properties"]["VpcConfig"]
    private = _private_subnets(compute)
    assert len(private) == 2
    assert {s["Ref"] for s in vpc["SubnetIds"]} == private
    [group] = vpc["SecurityGroupIds"]
    group_id = group["Fn::GetAtt"][0]
    props = compute["Resources"][group_id]["Properties"]
    assert "SecurityGroupIngress" not in props
    assert not resources(compute, "AWS::EC2::SecurityGroupIngress")
    assert props["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "Allow all outbound traffic by default", "IpProtocol": "-1"}
    ]


def test_operator_role_is_lambdas_with_the_managed_policy_and_the_system_log_group(on):
    compute = _compute(on)
    _, provider = _one(compute, "AWS::Lambda::CapacityProvider")
    role_id = provider["Properties"]["PermissionsConfig"]["CapacityProviderOperatorRoleArn"]["Fn::GetAtt"][0]
    role = compute["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert [flatten(arn) for arn in role["ManagedPolicyArns"]] == [
        f"arn:<AWS::Partition>:iam::aws:policy/{OPERATOR_POLICY}"
    ]
    logs = provider["Properties"]["TelemetryConfig"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert compute["Resources"][logs]["Properties"]["RetentionInDays"] == on.config.log_retention_days
    [statement] = statements_of(compute, role_id)
    assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert refers_to(statement["Resource"], logs)


def test_capacity_provider_architecture_and_scaling_come_from_the_settings(on):
    _, provider = _one(_compute(on), "AWS::Lambda::CapacityProvider")
    props = provider["Properties"]
    assert props["InstanceRequirements"] == {"Architectures": [on.config.architecture]}
    assert props["CapacityProviderScalingConfig"] == {
        "MaxVCpuCount": on.config.managed_instances_max_vcpu,
        "ScalingMode": "Auto",
    }
    for definition in _streaming(on):
        _, fn = _function(on, definition)
        assert fn["Properties"]["Architectures"] == props["InstanceRequirements"]["Architectures"]


def test_tuned_settings_arrive_from_context(tuned):
    config = tuned.config
    assert config.managed_instances is True
    assert (config.architecture, config.managed_instances_concurrency) == ("x86_64", 64)
    assert (config.managed_instances_memory_per_vcpu, config.managed_instances_max_vcpu) == (8, 48)
    assert config.managed_instances_memory_mb == 8192


# --- the streaming functions on it ---------------------------------------------------------------------------


def test_streaming_functions_run_on_the_capacity_provider(on):
    compute = _compute(on)
    provider_id, _ = _one(compute, "AWS::Lambda::CapacityProvider")
    [(export_id, export)] = [
        (k, v) for k, v in compute["Outputs"].items() if v["Value"] == {"Fn::GetAtt": [provider_id, "Arn"]}
    ]
    config = on.config
    for definition in _streaming(on):
        _, fn = _function(on, definition)
        props = fn["Properties"]
        placed = props["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
        assert _import_of(placed["CapacityProviderArn"]) == export["Export"]["Name"], export_id
        assert placed["PerExecutionEnvironmentMaxConcurrency"] == config.managed_instances_concurrency
        assert placed["ExecutionEnvironmentMemoryGiBPerVCpu"] == config.managed_instances_memory_per_vcpu
        assert props["MemorySize"] == config.managed_instances_memory_mb >= MI_MIN_MEMORY_MB
        assert props["MemorySize"] % (config.managed_instances_memory_per_vcpu * 1024) == 0  # whole vCPUs
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "Ref" in props["LoggingConfig"]["LogGroup"]  # still its own log group, with retention
        assert props["PublishToLatestPublished"] is False
        assert props["FunctionName"] == f"{config.name_prefix}-{definition.name}{FUNCTION_NAME_SUFFIX}"
        assert props["Runtime"] == "python3.13"


def test_each_streaming_function_has_a_live_alias_on_a_version_deleted_when_superseded(on):
    api = on.raw("api")
    for definition in _streaming(on):
        function_id, _ = _function(on, definition)
        _, alias = _alias_of(api, function_id)
        assert alias["Properties"]["Name"] == LIVE_ALIAS
        version_id, attribute = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
        assert attribute == "Version"
        version = api["Resources"][version_id]
        assert version["Type"] == "AWS::Lambda::Version"
        assert version["Properties"]["FunctionName"] == {"Ref": function_id}
        assert version["DeletionPolicy"] == "Delete"
    assert len(resources(api, "AWS::Lambda::Alias")) == len(_streaming(on))


def test_function_urls_invoke_the_alias_with_the_default_cors_and_auth(on, real):
    api = on.raw("api")
    default_urls = [u["Properties"] for u in resources(real.raw("api"), "AWS::Lambda::Url").values()]
    urls = resources(api, "AWS::Lambda::Url")
    assert len(urls) == len(_streaming(on))
    for definition in _streaming(on):
        function_id, _ = _function(on, definition)
        alias_id, _ = _alias_of(api, function_id)
        [(_, url)] = [
            (k, u)
            for k, u in urls.items()
            if u["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
        ]
        props = url["Properties"]
        assert props["Qualifier"] == LIVE_ALIAS
        assert alias_id in url["DependsOn"]
        assert props["InvokeMode"] == "RESPONSE_STREAM"
        assert props["AuthType"] == "NONE"
        if on.config.allowed_origins == real.config.allowed_origins:
            assert props["Cors"] == default_urls[0]["Cors"]
        assert props["Cors"]["AllowOrigins"] == list(on.config.allowed_origins)
        # The public permissions name the alias, as the URL invokes it.
        public = [
            p["Properties"]
            for p in resources(api, "AWS::Lambda::Permission").values()
            if p["Properties"]["Principal"] == "*"
        ]
        mine = [p for p in public if p["FunctionName"] == {"Ref": alias_id}]
        assert {p["Action"] for p in mine} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
        assert not [p for p in public if refers_to(p["FunctionName"], function_id)]


def test_outputs_keep_their_keys_and_name_the_alias_urls(mi, real):
    api = mi.raw("api")
    assert set(api["Outputs"]) == set(real.raw("api")["Outputs"])
    for definition in _streaming(mi):
        function_id, _ = _function(mi, definition)
        [url_id] = [
            k
            for k, u in resources(api, "AWS::Lambda::Url").items()
            if u["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
        ]
        assert refers_to(api["Outputs"][definition.url_output_key]["Value"], url_id)


def test_rest_streaming_api_invokes_the_alias(mi):
    api = mi.raw("api")
    aliases = {_alias_of(api, d.logical_id)[0]: d for d in _streaming(mi) if d.url_output_key}  # alias id -> definition
    methods = [
        m["Properties"]
        for m in resources(api, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "POST"
    ]
    assert len(methods) == len(aliases)
    for method in methods:
        uri = method["Integration"]["Uri"]
        assert uri["Fn::Join"][1][-1] == "/response-streaming-invocations"
        [alias_id] = [a for a in aliases if refers_to(uri, a)]
        assert not refers_to(uri, aliases[alias_id].logical_id)
    gateway = [
        p["Properties"]
        for p in resources(api, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        and any(refers_to(p["Properties"]["FunctionName"], a) for a in aliases)
    ]
    assert len(gateway) == len(aliases)


def test_the_other_functions_are_unchanged(on, real):
    """Buffered functions: same properties as in the default synth (the stream URLs they are given aside)."""
    mine = on.raw("api")["Resources"]
    default = real.raw("api")["Resources"]
    for definition in (d for d in on.definitions if not d.streaming):
        props = dict(mine[definition.logical_id]["Properties"])
        before = dict(default[definition.logical_id]["Properties"])
        assert "CapacityProviderConfig" not in props
        env, env_before = props.pop("Environment")["Variables"], before.pop("Environment")["Variables"]
        assert set(env) == set(env_before), definition.name
        assert props.pop("FunctionName") == f"{on.config.name_prefix}-{definition.name}"
        assert props.pop("Architectures") == [on.config.architecture]
        for key in ("Code", "FunctionName", "Architectures"):
            before.pop(key)
        props.pop("Code")  # the asset's hash covers the architecture
        assert props == before, definition.name
    aliased = {a["Properties"]["FunctionName"]["Ref"] for a in resources(on.raw("api"), "AWS::Lambda::Alias").values()}
    assert aliased == {d.logical_id for d in _streaming(on)}


def test_every_role_keeps_the_statements_it_had(mi, real):
    mine, default = mi.raw("api"), real.raw("api")
    for definition in mi.definitions:
        role_id = mine["Resources"][definition.logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert default["Resources"][definition.logical_id]["Properties"]["Role"]["Fn::GetAtt"][0] == role_id
        assert statements_of(mine, role_id) == statements_of(default, role_id), definition.name


# --- checks over the whole app --------------------------------------------------------------------------------


def test_cdk_nag_finds_nothing_unacknowledged(mi):
    report = AwsSolutionsChecks(verbose=True).validate_scope(mi.built.app)
    findings = [
        f"{v.severity} {v.rule_name} at {', '.join(r.construct_path for r in v.violating_resources)}"
        for v in report.violations
    ]
    assert findings == []
    assert report.success


def test_cfn_lint_finds_no_errors(on):
    errors = []
    for path in on.template_files():
        for match in lint(path.read_text(), config=ManualArgs(regions=["us-east-1"])):
            if match.rule.id.startswith("E"):
                errors.append(f"{path.name}: {match.rule.id} {match.message}")
    assert errors == []


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "environ", "expected"),
    [
        ({}, {}, False),
        ({"managedInstances": "true"}, {}, True),
        ({"managedInstances": True}, {}, True),
        ({"managedInstances": "off"}, {"MANAGED_INSTANCES": "on"}, False),
        ({}, {"MANAGED_INSTANCES": "yes"}, True),
    ],
)
def test_the_switch_reads_context_then_environment(context, environ, expected):
    assert InfraConfig.load(context, environ=environ).managed_instances is expected


def test_defaults():
    config = InfraConfig.load({}, environ={})
    assert config.managed_instances_concurrency == 32
    assert config.managed_instances_memory_per_vcpu == 4
    assert config.managed_instances_max_vcpu == 16
    assert (config.managed_instances_memory_mb, config.managed_instances_vcpus) == (4096, 1)


@pytest.mark.parametrize(
    ("concurrency", "ratio", "memory"),
    [
        (32, 4, 4096),  # 32 processes x 128 MB: 1 vCPU at 4 GiB per vCPU
        (1, 2, 2048),  # never under the 2 GB minimum
        (16, 4, 4096),  # never under 1 vCPU
        (33, 4, 8192),  # whole vCPUs
        (64, 8, 8192),
        (100, 2, 14336),
        (256, 8, 32768),
    ],
)
def test_memory_is_a_process_per_request_in_whole_vcpus(concurrency, ratio, memory):
    config = InfraConfig(managed_instances_concurrency=concurrency, managed_instances_memory_per_vcpu=ratio)
    assert config.managed_instances_memory_mb == memory


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("managedInstances", "maybe", "true or false"),
        ("managedInstancesConcurrency", "0", "1 to 256"),
        ("managedInstancesConcurrency", "257", "1 to 256"),
        ("managedInstancesConcurrency", "lots", "whole number"),
        ("managedInstancesMemoryPerVCpu", "3", r"one of \(2, 4, 8\)"),
        ("managedInstancesMaxVCpu", "8", "12 to 15000"),
        ("managedInstancesMaxVCpu", "20000", "12 to 15000"),
    ],
)
def test_bad_settings_fail_with_the_key_named(key, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        InfraConfig.load({key: value}, environ={})
    assert key in str(caught.value)


def _build(context: dict[str, Any], definitions: tuple[FunctionDefinition, ...] = FUNCTIONS) -> None:
    from infra.app import build, new_app
    from tests.fixtures.cdk_synth import SKIP_BUNDLING

    app = new_app({**SKIP_BUNDLING, **context})
    build(app, InfraConfig.load(app.node.try_get_context, environ={}), definitions, nag=False)


def test_a_vcpu_ceiling_too_low_for_the_first_environments_fails_the_synth():
    # 96 processes: 12 GiB, 3 vCPUs per environment; 2 functions x 3 environments x 3 vCPUs = 18.
    context = {"managedInstances": "true", "managedInstancesConcurrency": "96", "managedInstancesMaxVCpu": "12"}
    with pytest.raises(ConfigError, match=r"managedInstancesMaxVCpu .*at least 18"):
        _build(context)


def test_a_function_invoking_a_streaming_function_by_name_fails_the_synth():
    definitions = (
        FunctionDefinition(name="s", folder="s_not_on_disk", streaming=True),
        FunctionDefinition(name="c", folder="c_not_on_disk", streaming=False, invokes=("s",)),
    )
    with pytest.raises(CatalogError, match=r"c invokes \['s'\] by name"):
        _build({"managedInstances": "true"}, definitions)


def test_the_local_stack_reads_managed_instances_from_the_templates(on: Synthesized) -> None:
    """What `make dev` runs from these templates: N invocations an environment and JSON logs for the
    streaming functions, as deployed; the other functions one at a time, as deployed."""
    from local.deployed import read_functions

    templates = {
        stack.stack_name: on.assembly.get_stack_by_name(stack.stack_name).template for stack in on.built.stacks
    }
    deployed = read_functions(templates, FUNCTIONS)
    for definition in FUNCTIONS:
        function = deployed.function(definition.name)
        if definition.streaming:
            assert function.environment_concurrency == on.config.managed_instances_concurrency
            assert function.log_format == "JSON"
        else:
            assert function.environment_concurrency == 1
