"""The REST streaming API (infra/rest_streaming.py): API Gateway REST with responseTransferMode STREAM.

The real app has it (the default); the fake synth switches it off (`restStreaming=false`).
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from functions.catalog import FUNCTIONS, FunctionDefinition
from infra.catalog_rules import CatalogError, rest_stream_routes
from infra.config import InfraConfig
from infra.rest_streaming import (
    REST_ACCESS_LOG_FIELDS,
    REST_STAGE_NAME,
    REST_STREAM_OUTPUT_KEY,
    REST_STREAM_ROUTES,
)
from shared.http.body import StreamRequestBody
from shared.http.routes import CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE
from tests.infra.cfn import flatten, function_by_name, refers_to, resources

CONTRACT_PATHS = {  # CONTRACT.md section 1, the Function URL paths
    "stream-coach-conversation": "/users/{userId}/coaches/{coachId}/conversations/{conversationId}/stream",
    "stream-coach-creator-session": "/users/{userId}/coach-creator-sessions/{sessionId}/stream",
}
CONTRACT_ERROR_CODES = {
    "VALIDATION_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "INTERNAL_ERROR",
}


def _streaming(synthesized) -> list[FunctionDefinition]:
    return [d for d in synthesized.definitions if d.streaming and d.url_output_key]


def _path_of(template, resource_id: str) -> str:
    """A resource's full path, from its PathPart up through ParentId to the API's root."""
    parts = []
    while resource_id in template["Resources"]:
        props = template["Resources"][resource_id]["Properties"]
        parts.append(props["PathPart"])
        parent = props["ParentId"]
        if "Ref" not in parent:  # Fn::GetAtt [RestApi, RootResourceId]
            break
        resource_id = parent["Ref"]
    return "/" + "/".join(reversed(parts))


def _methods(template) -> dict[tuple[str, str], dict]:
    """(HTTP method, path) -> the method's properties."""
    found = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        found[(props["HttpMethod"], _path_of(template, props["ResourceId"]["Ref"]))] = props
    return found


@pytest.fixture(scope="module")
def api(real):
    return real.raw("api")


def test_every_streaming_function_has_a_streaming_method_on_its_function_url_path(real, api):
    methods = _methods(api)
    streaming = _streaming(real)
    assert {d.name for d in streaming} == set(CONTRACT_PATHS)
    for definition in streaming:
        props = methods[("POST", CONTRACT_PATHS[definition.name])]
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["IntegrationHttpMethod"] == "POST"
        assert integration["ResponseTransferMode"] == "STREAM"
        uri = flatten(integration["Uri"])
        assert ":lambda:path/2021-11-15/functions/" in uri
        assert uri.endswith("/response-streaming-invocations")
        logical_id, _ = function_by_name(api, f"{real.config.name_prefix}-{definition.name}")
        assert refers_to(integration["Uri"], logical_id)
        # A stream may last as long as the function runs, not API Gateway's buffered 29 seconds.
        assert integration["TimeoutInMillis"] == definition.timeout_seconds * 1000
    assert {m for m, _ in methods} == {"POST", "OPTIONS"}
    assert len(methods) == 2 * len(streaming)


def test_every_method_but_the_preflight_needs_the_cognito_authorizer(real, api):
    authorizers = resources(api, "AWS::ApiGateway::Authorizer")
    assert len(authorizers) == 1
    authorizer_id, authorizer = next(iter(authorizers.items()))
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    [provider] = authorizer["Properties"]["ProviderARNs"]
    assert "UserPool" in flatten(provider)  # the auth stack's pool, imported
    for (method, path), props in _methods(api).items():
        if method == "OPTIONS":
            assert props["AuthorizationType"] == "NONE", path  # browsers send no token on a preflight
            assert "AuthorizerId" not in props
        else:
            assert props["AuthorizationType"] == "COGNITO_USER_POOLS", path
            assert refers_to(props["AuthorizerId"], authorizer_id), path


def test_preflight_allows_only_the_configured_origins_post_and_the_contract_headers(real, api):
    origins = real.config.allowed_origins
    for (method, path), props in _methods(api).items():
        if method != "OPTIONS":
            continue
        [response] = props["Integration"]["IntegrationResponses"]
        headers = response["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Methods"] == "'POST'"
        assert headers["method.response.header.Access-Control-Allow-Headers"] == "'authorization,content-type'"
        assert headers["method.response.header.Access-Control-Allow-Origin"] == f"'{origins[0]}'"
        template = response["ResponseTemplates"]["application/json"]
        for origin in origins[1:]:  # the first is the default; any other is echoed only when it asks
            assert f'#if($origin == "{origin}")' in template, path
        assert "*" not in json.dumps(headers)


def test_api_gateway_may_invoke_each_function_only_through_its_method(real, api):
    rest_api_id = next(iter(resources(api, "AWS::ApiGateway::RestApi")))
    permissions = [
        p["Properties"]
        for p in resources(api, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    for definition in _streaming(real):
        logical_id, _ = function_by_name(api, f"{real.config.name_prefix}-{definition.name}")
        mine = [p for p in permissions if refers_to(p["FunctionName"], logical_id)]
        assert len(mine) == 1, definition.name  # no test-invoke permission
        # lambda:InvokeFunction is the action that authorizes InvokeWithResponseStream as well.
        assert mine[0]["Action"] == "lambda:InvokeFunction"
        assert refers_to(mine[0]["SourceArn"], rest_api_id)
        path = CONTRACT_PATHS[definition.name]
        wildcarded = "/".join("*" if part.startswith("{") else part for part in path.split("/"))
        assert flatten(mine[0]["SourceArn"]).endswith(f"/POST{wildcarded}")


def test_regional_endpoint_stage_throttling_and_json_access_logs(real, api):
    [rest_api] = resources(api, "AWS::ApiGateway::RestApi").values()
    # Regional: an idle stream survives 5 minutes there, 30 seconds on an edge-optimized endpoint.
    assert rest_api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    assert "MinimumCompressionSize" not in rest_api["Properties"]  # streamed responses are not compressed
    [stage] = resources(api, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == REST_STAGE_NAME
    assert not props.get("CacheClusterEnabled")
    [settings] = props["MethodSettings"]
    assert settings["HttpMethod"] == "*"
    assert settings["ResourcePath"] == "/*"
    assert settings["ThrottlingRateLimit"] == real.config.api_throttle_rate
    assert settings["ThrottlingBurstLimit"] == real.config.api_throttle_burst
    assert not settings.get("CachingEnabled")
    log = props["AccessLogSetting"]
    assert json.loads(log["Format"]) == REST_ACCESS_LOG_FIELDS
    log_group = log["DestinationArn"]["Fn::GetAtt"][0]
    assert api["Resources"][log_group]["Properties"]["RetentionInDays"] == real.config.log_retention_days
    assert not resources(api, "AWS::ApiGateway::Account"), "the account-wide logging role is not ours"


def _body_schema(api) -> dict:
    [model] = resources(api, "AWS::ApiGateway::Model").values()
    assert model["Properties"]["ContentType"] == "application/json"
    return model["Properties"]["Schema"]


def test_posts_are_validated_against_the_body_model(real, api):
    [validator_id] = resources(api, "AWS::ApiGateway::RequestValidator")
    validator = api["Resources"][validator_id]["Properties"]
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True
    model_id = next(iter(resources(api, "AWS::ApiGateway::Model")))
    for (method, path), props in _methods(api).items():
        if method == "POST":
            assert refers_to(props["RequestValidatorId"], validator_id), path
            assert refers_to(props["RequestModels"]["application/json"], model_id), path
            assert props["RequestParameters"] == {"method.request.header.Authorization": True}


def test_body_model_has_the_contract_fields_and_is_never_stricter_than_the_handler(api):
    schema = _body_schema(api)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    aliases = {field.alias for field in StreamRequestBody.model_fields.values()}
    assert set(schema["properties"]) == aliases
    assert schema["required"] == ["userResponse"]
    assert schema["additionalProperties"] is False
    accepted_by_the_handler = [
        {"userResponse": "Did my squats"},
        {"userResponse": "x" * 10_000, "messageTimestamp": "2025-01-02T03:04:05Z", "clientMessageId": "a_b-1"},
        {"userResponse": "hi", "messageTimestamp": None, "clientMessageId": None, "imageS3Keys": None},
        {"userResponse": "hi", "imageS3Keys": [f"user-uploads/u1/{i}.jpg" for i in range(5)]},
    ]
    for body in accepted_by_the_handler:
        StreamRequestBody.model_validate(body)  # the handler's own model agrees
        jsonschema.validate(body, schema, cls=jsonschema.Draft4Validator)
    refused = [
        {},
        {"userResponse": ""},
        {"userResponse": 3},
        {"userResponse": "hi", "extra": 1},
        {"userResponse": "hi", "imageS3Keys": ["user-uploads/u1/a.jpg"] * 6},
        ["userResponse"],
    ]
    for body in refused:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema, cls=jsonschema.Draft4Validator)


def test_api_gateway_errors_speak_the_contract(api):
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(api, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "BAD_REQUEST_BODY", "THROTTLED", "DEFAULT_5XX"} <= set(responses)
    for response_type, props in responses.items():
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert set(body) == {"error"}, response_type
        assert body["error"]["code"] in CONTRACT_ERROR_CODES, response_type
        assert body["error"]["message"], response_type
    assert responses["UNAUTHORIZED"]["StatusCode"] == "401"
    assert responses["THROTTLED"]["StatusCode"] == "429"
    assert responses["THROTTLED"]["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"


def test_output_is_the_stage_url_without_a_trailing_slash(api):
    outputs = api["Outputs"]
    rest_api_id = next(iter(resources(api, "AWS::ApiGateway::RestApi")))
    assert flatten(outputs[REST_STREAM_OUTPUT_KEY]["Value"]) == (
        f"https://<{rest_api_id}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/{REST_STAGE_NAME}"
    )
    # CDK's own `Endpoint` output is dropped: the outputs keep the keys of .local/outputs.json plus ours.
    assert not [key for key in outputs if key.startswith("RestStreamApi")]


def test_switched_off_there_is_no_rest_api(fake):
    assert fake.config.rest_streaming is False
    template = fake.raw("api")
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::ApiGateway::")]
    assert REST_STREAM_OUTPUT_KEY not in template["Outputs"]
    assert fake.built.api.rest_stream is None


@pytest.mark.parametrize(
    ("context", "environ", "expected"),
    [
        ({}, {}, True),
        ({"restStreaming": "false"}, {}, False),
        ({"restStreaming": False}, {"REST_STREAMING": "true"}, False),
        ({}, {"REST_STREAMING": "off"}, False),
    ],
)
def test_the_switch_reads_context_then_environment(context, environ, expected):
    assert InfraConfig.load(context, environ=environ).rest_streaming is expected


# --- the route mapping, checked against the catalog ------------------------------------------------


def test_routes_are_the_handlers_own_and_cover_the_catalog():
    routes = {route.function: route for route in rest_stream_routes(FUNCTIONS, REST_STREAM_ROUTES)}
    assert {name: route.path for name, route in routes.items()} == CONTRACT_PATHS
    assert routes["stream-coach-conversation"].path == CONVERSATION_STREAM_ROUTE.template
    assert routes["stream-coach-creator-session"].path == CREATOR_SESSION_STREAM_ROUTE.template
    assert {route.method for route in routes.values()} == {"POST"}


def _stream(name: str, key: str) -> FunctionDefinition:
    return FunctionDefinition(name=name, folder=name.replace("-", "_"), streaming=True, url_output_key=key)


def test_an_unmapped_streaming_function_fails_the_synth():
    with pytest.raises(CatalogError, match=r"without a REST streaming route.*restStreaming=false"):
        rest_stream_routes([*FUNCTIONS, _stream("stream-new", "newStreamUrl")], REST_STREAM_ROUTES)


def test_a_stale_or_non_streaming_entry_fails_the_synth():
    with pytest.raises(CatalogError, match="'gone'"):
        rest_stream_routes(FUNCTIONS, {**REST_STREAM_ROUTES, "gone": "POST /gone"})
    with pytest.raises(CatalogError, match="'coach-api'"):
        rest_stream_routes(FUNCTIONS, {**REST_STREAM_ROUTES, "coach-api": "POST /config"})


def test_two_functions_on_one_route_or_a_bad_route_fail_the_synth():
    a, b = _stream("stream-a", "aUrl"), _stream("stream-b", "bUrl")
    with pytest.raises(CatalogError, match="share a REST route"):
        rest_stream_routes([a, b], {"stream-a": "POST /x/stream", "stream-b": "POST /x/stream"})
    with pytest.raises(CatalogError, match="METHOD /path"):
        rest_stream_routes([a], {"stream-a": "/x/stream"})
