"""The API stack, generated from the catalog: functions, Function URLs, environment, routes, outputs."""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk.assertions import Match

from infra.api_stack import ACCESS_LOG_FIELDS
from infra.catalog_rules import construct_id, declared_routes, method_catch_alls, routes, target_env_var, url_env_var
from infra.functions import EXEC_WRAPPER_PATH, TASK_ROOT
from shared.settings import RUNTIME_VARIABLES, SDK_ENDPOINT_VARIABLES
from shared.store.schema import TABLE_NAME_ENV
from tests.infra.cfn import function_by_name, refers_to, resources

REPO = Path(__file__).resolve().parents[2]


def _function(synthesized, definition):
    name = f"{synthesized.config.name_prefix}-{definition.name}"
    return function_by_name(synthesized.raw("api"), name)


def test_every_catalog_function_is_deployed_once_with_its_own_role(synthesized):
    template = synthesized.raw("api")
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == len(synthesized.definitions)
    roles = {str(resource["Properties"]["Role"]) for resource in functions.values()}
    assert len(roles) == len(functions), "functions must not share a role"


def test_runtime_architecture_handler_timeout_memory_from_catalog_and_config(synthesized):
    architecture = synthesized.config.architecture
    for definition in synthesized.definitions:
        _, fn = _function(synthesized, definition)
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == [architecture]
        assert props["Handler"] == definition.handler
        assert props["Timeout"] == definition.timeout_seconds
        assert props["MemorySize"] == definition.memory_mb


def test_streaming_functions_run_the_exec_wrapper_and_buffered_ones_do_not(synthesized):
    for definition in synthesized.definitions:
        _, fn = _function(synthesized, definition)
        env = fn["Properties"]["Environment"]["Variables"]
        if definition.streaming:
            assert env["AWS_LAMBDA_EXEC_WRAPPER"] == EXEC_WRAPPER_PATH
        else:
            assert "AWS_LAMBDA_EXEC_WRAPPER" not in env
    # The path in the template is the repository's wrapper, at the asset root (/var/task).
    wrapper = REPO / Path(EXEC_WRAPPER_PATH).relative_to(TASK_ROOT)
    assert wrapper.is_file()
    assert os.access(wrapper, os.X_OK)


def test_every_streaming_function_has_a_response_stream_url_with_narrow_cors(synthesized):
    template = synthesized.raw("api")
    urls = resources(template, "AWS::Lambda::Url")
    streaming = [d for d in synthesized.definitions if d.streaming]
    assert len(urls) == len(streaming)
    for definition in streaming:
        logical_id, _ = _function(synthesized, definition)
        matching = [u for u in urls.values() if refers_to(u["Properties"]["TargetFunctionArn"], logical_id)]
        assert len(matching) == 1, definition.name
        props = matching[0]["Properties"]
        assert props["InvokeMode"] == "RESPONSE_STREAM"
        assert props["AuthType"] == "NONE"  # the code verifies Cognito JWTs (CONTRACT.md section 1)
        cors = props["Cors"]
        assert cors["AllowOrigins"] == list(synthesized.config.allowed_origins)
        assert "*" not in cors["AllowOrigins"]
        assert cors["AllowMethods"] == ["POST"]
        assert sorted(cors["AllowHeaders"]) == ["authorization", "content-type"]


def test_public_url_is_invokable_only_through_the_url(synthesized):
    template = synthesized.raw("api")
    permissions = resources(template, "AWS::Lambda::Permission")
    for definition in (d for d in synthesized.definitions if d.streaming):
        logical_id, _ = _function(synthesized, definition)
        mine = [p["Properties"] for p in permissions.values() if refers_to(p["Properties"]["FunctionName"], logical_id)]
        public = [p for p in mine if p["Principal"] == "*"]
        assert {p["Action"] for p in public} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
        for permission in public:
            assert permission.get("FunctionUrlAuthType") == "NONE" or permission.get("InvokedViaFunctionUrl") is True


def test_log_groups_with_retention(synthesized):
    template = synthesized.raw("api")
    log_groups = resources(template, "AWS::Logs::LogGroup")
    for definition in synthesized.definitions:
        _, fn = _function(synthesized, definition)
        group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[group]["Properties"]["RetentionInDays"] == synthesized.config.log_retention_days


def test_environment_is_exactly_what_the_settings_model_reads(synthesized):
    """The stack sets every variable a function's settings model requires, and none that no model reads;
    the model accepts the values (intrinsics stand for resource ids)."""
    config = synthesized.config
    for definition in synthesized.definitions:
        _, fn = _function(synthesized, definition)
        env = fn["Properties"]["Environment"]["Variables"]
        wanted = definition.settings.variables()
        read_by_runtime = RUNTIME_VARIABLES | set(SDK_ENDPOINT_VARIABLES)
        assert set(env) - read_by_runtime <= set(wanted), definition.name
        assert {name for name, required in wanted.items() if required} <= set(env), definition.name
        as_strings = {k: v if isinstance(v, str) else "resource-id" for k, v in env.items()}
        definition.settings.from_env(as_strings)  # raises, naming the variable, if a value is invalid
        expected = {
            "ALLOWED_ORIGINS": ",".join(config.allowed_origins),
            "STREAMING_ENABLED": "true" if config.streaming_enabled else "false",
            "STREAMING_PERCENTAGE": str(config.streaming_percentage),
            "RATE_LIMIT_PER_MINUTE": str(config.rate_limit_per_minute),
            "MODEL_ID_REPLY": config.model_id_reply,
            "MODEL_ID_SIDE": config.model_id_side,
            **{target_env_var(target): f"{config.name_prefix}-{target}" for target in definition.invokes},
            **definition.extra_environment,
        }
        assert {k: env[k] for k in expected if k in env} == {k: v for k, v in expected.items() if k in env}
        assert (TABLE_NAME_ENV in env) == definition.uses_table
        assert ("MODEL_ID_REPLY" in env) == definition.uses_models
        assert ("UPLOADS_BUCKET" in env) == definition.reads_uploads
        assert all(target_env_var(target) in env for target in definition.invokes)
        if "STREAM_TIME_BUDGET_SECONDS" in env:
            budget = float(env["STREAM_TIME_BUDGET_SECONDS"])
            assert 0 < budget < definition.timeout_seconds, "the stream budget must end before the Lambda deadline"
        url_vars = {url_env_var(d.url_output_key) for d in synthesized.definitions if d.url_output_key}
        if definition.streaming:
            assert not url_vars & set(env), "a streaming function must not name Function URLs (cycle)"
        elif url_vars & set(wanted):
            assert url_vars <= set(env), "GET /config needs to know where to stream"
        endpoints = set(SDK_ENDPOINT_VARIABLES)
        if config.sam_local:
            assert all(env[v] == "" for v in endpoints)
            assert env.get("STREAMING_ADAPTER") == ("off" if definition.streaming else None)
        else:
            assert not endpoints & set(env), "a deployable synth must not declare endpoint overrides"
            assert "STREAMING_ADAPTER" not in env


def test_function_logical_ids_are_readable_for_sam_local_invoke(synthesized):
    for definition in synthesized.definitions:
        logical_id, _ = _function(synthesized, definition)
        assert logical_id == f"{construct_id(definition.name)}Function"


def test_fake_settings_arrive_from_context(fake):
    assert fake.config.sam_local is True
    assert fake.config.streaming_enabled is False
    assert fake.config.streaming_percentage == 25
    assert fake.config.architecture == "x86_64"
    assert fake.built.api.stack_name == "CoachTestApi"


def test_every_api_route_has_the_jwt_authorizer_and_public_routes_have_none(synthesized):
    template = synthesized.raw("api")
    authorizers = resources(template, "AWS::ApiGatewayV2::Authorizer")
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"] for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    expected_private = {r for d in synthesized.definitions for r in d.api_routes}
    expected_public = {r for d in synthesized.definitions for r in d.public_routes}
    for catch_all in method_catch_alls(declared_routes(synthesized.definitions)):
        (expected_private if catch_all.authorized else expected_public).add(catch_all.key)
    assert set(routes) == expected_private | expected_public
    if expected_private:
        assert len(authorizers) == 1
    authorizer_id = next(iter(authorizers), None)
    for key in expected_private:
        assert routes[key]["AuthorizationType"] == "JWT", key
        assert refers_to(routes[key]["AuthorizerId"], authorizer_id), key
    for key in expected_public:
        assert routes[key].get("AuthorizationType", "NONE") == "NONE", key


def test_jwt_authorizer_trusts_the_user_pool_and_its_client(fake):
    template = fake.template("api")
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {
                "Audience": [{"Fn::ImportValue": Match.string_like_regexp("UserPoolWebClient")}],
                "Issuer": Match.any_value(),
            },
        },
    )


def test_routes_integrate_their_own_function(fake):
    template = fake.raw("api")
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    owners = {route.key: route.function for route in routes(fake.definitions)}
    for route in resources(template, "AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]
        integration_id = next(i for i in integrations if refers_to(target, i))
        uri = integrations[integration_id]["Properties"]["IntegrationUri"]
        owner = next(d for d in fake.definitions if d.name == owners[route["Properties"]["RouteKey"]])
        logical_id, _ = _function(fake, owner)
        assert refers_to(uri, logical_id)
        assert integrations[integration_id]["Properties"]["PayloadFormatVersion"] == "2.0"


def test_http_api_cors_stage_throttling_and_access_logs(synthesized):
    template = synthesized.template("api")
    methods = sorted({r.split(" ", 1)[0] for d in synthesized.definitions for r in (*d.api_routes, *d.public_routes)})
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "HTTP",
            "CorsConfiguration": {
                "AllowOrigins": list(synthesized.config.allowed_origins),
                "AllowHeaders": ["authorization", "content-type"],
                "AllowMethods": methods or ["GET"],
            },
        },
    )
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": synthesized.config.api_throttle_rate,
                "ThrottlingBurstLimit": synthesized.config.api_throttle_burst,
            },
            "AccessLogSettings": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("routeKey"),
            },
        },
    )
    assert "$context.authorizer.error" in ACCESS_LOG_FIELDS.values()


def test_outputs_use_the_local_outputs_keys(synthesized):
    outputs = synthesized.raw("api")["Outputs"]
    url_keys = {d.url_output_key for d in synthesized.definitions if d.url_output_key}
    assert {"apiUrl", "issuer", "userPoolId", "userPoolClientId"} | url_keys <= set(outputs)
    for key in url_keys:
        # https://<id>.lambda-url.<region>.on.aws without the trailing slash, like the local stack's URLs
        value = outputs[key]["Value"]["Fn::Join"]
        assert value[1][0] == "https://"


def test_real_catalog_outputs_match_the_contract_keys(real):
    outputs = real.raw("api")["Outputs"]
    assert {"apiUrl", "coachConversationStreamUrl", "coachCreatorStreamUrl", "issuer"} <= set(outputs)


def test_logical_ids_come_from_catalog_names(synthesized):
    paths = {c.node.path for c in synthesized.built.api.node.children}
    for definition in synthesized.definitions:
        assert f"{synthesized.built.api.stack_name}/{construct_id(definition.name)}" in paths


def test_each_path_has_a_catch_all_route_to_the_function_that_reads_it(real):
    """A method a path does not serve reaches a function (405 with `Allow`), not API Gateway's 404."""
    template = real.raw("api")
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"] for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    declared = declared_routes(real.definitions)
    for path in {route.path for route in declared}:
        catch_all = routes[f"ANY {path}"]
        readers = [route for route in declared if route.path == path and route.method == "GET"]
        owner = (readers or [route for route in declared if route.path == path])[0].function
        integration_id = catch_all["Target"]["Fn::Join"][1][1]["Ref"]
        integration = resources(template, "AWS::ApiGatewayV2::Integration")[integration_id]["Properties"]
        assert refers_to(integration["IntegrationUri"], function_by_name(template, f"coach-stream-{owner}")[0]), path
