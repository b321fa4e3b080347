"""Plain-Python pieces of infra/: settings, catalog rules, Bedrock ARNs, the outputs flattener."""

from __future__ import annotations

import pytest

from functions.catalog import FunctionDefinition
from infra.bedrock import model_resources, split_profile
from infra.catalog_rules import CatalogError, check, construct_id, parse_route, target_env_var, url_env_var
from infra.config import ConfigError, InfraConfig
from infra.outputs import flatten


def test_defaults_are_valid_and_arm64():
    config = InfraConfig.load({}, environ={})
    assert config.architecture == "arm64"
    assert config.streaming_enabled is True
    assert config.python_tag == "cp313"


def test_context_beats_environment_beats_default():
    env = {
        "STREAMING_PERCENTAGE": "40",
        "ALLOWED_ORIGINS": "https://a.example.com",
        "LAMBDA_ARCHITECTURE": "x86_64",
    }
    config = InfraConfig.load({"streamingPercentage": "60"}, environ=env)
    assert config.streaming_percentage == 60
    assert config.allowed_origins == ("https://a.example.com",)
    assert config.architecture == "x86_64"


def test_typed_context_values_from_cdk_json_work():
    config = InfraConfig.load({"streamingEnabled": False, "allowedOrigins": ["https://a.example.com/"]}, environ={})
    assert config.streaming_enabled is False
    assert config.allowed_origins == ("https://a.example.com",)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("architecture", "mips", "architecture"),
        ("allowedOrigins", "*", "no wildcard"),
        ("allowedOrigins", "https://a.example.com/app", "no wildcard, no path"),
        ("streamingPercentage", "101", "0 to 100"),
        ("streamingEnabled", "maybe", "true or false"),
        ("rateLimitPerMinute", "ten", "whole number"),
        ("logRetentionDays", "10", "one of"),
        ("modelIdReply", "bad model id!", "model id"),
    ],
)
def test_bad_settings_fail_with_the_key_named(key, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        InfraConfig.load({key: value}, environ={})
    assert key in str(caught.value)


def test_route_parsing_and_names():
    route = parse_route("PUT /users/{userId}/coach-creator-sessions/{sessionId}", "f", authorized=True)
    assert (route.method, route.path) == ("PUT", "/users/{userId}/coach-creator-sessions/{sessionId}")
    with pytest.raises(CatalogError):
        parse_route("FETCH /x", "f", authorized=True)
    assert construct_id("stream-coach-conversation") == "StreamCoachConversation"
    assert target_env_var("post-turn-worker") == "POST_TURN_WORKER_FUNCTION_NAME"
    assert url_env_var("coachConversationStreamUrl") == "COACH_CONVERSATION_STREAM_URL"


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ((FunctionDefinition("a", "a", False, invokes=("nope",)),), "unknown function"),
        ((FunctionDefinition("a", "a", False), FunctionDefinition("a", "b", False)), "duplicate"),
        (
            (
                FunctionDefinition("a", "a", False, api_routes=("GET /x",)),
                FunctionDefinition("b", "b", False, public_routes=("GET /x",)),
            ),
            "claimed by",
        ),
        ((FunctionDefinition("a", "a", False, url_output_key="aUrl"),), "streaming"),
        ((FunctionDefinition("Bad_Name", "a", False),), "lower-case"),
    ],
)
def test_catalog_mistakes_fail_the_synth_clearly(definitions, message):
    with pytest.raises(CatalogError, match=message):
        check(definitions)


def test_bedrock_resources_per_kind_of_model_id():
    assert split_profile("us.amazon.nova-micro-v1:0") == ("us", "amazon.nova-micro-v1:0")
    assert split_profile("amazon.nova-micro-v1:0") == (None, "amazon.nova-micro-v1:0")
    resources = model_resources(
        ["us.amazon.nova-micro-v1:0", "anthropic.claude-3-haiku-20240307-v1:0", "us.amazon.nova-micro-v1:0"],
        partition="aws",
        region="us-east-1",
        account="111122223333",
    )
    assert resources.profiles == ["arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.amazon.nova-micro-v1:0"]
    assert resources.foundation_models == [
        "arn:aws:bedrock:*::foundation-model/amazon.nova-micro-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ]
    arn = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc"
    assert model_resources([arn], partition="aws", region="r", account="a").profiles == [arn]


def test_outputs_flatten_to_the_local_outputs_shape():
    cdk_outputs = {
        "CoachStreamData": {"ExportsOutputRefX": "x", "UploadsBucketArn": "arn"},
        "CoachStreamApi": {
            "apiUrl": "https://api",
            "issuer": "https://issuer",
            "ExportsOutputFnGetAttY": "y",
        },
    }
    assert flatten(cdk_outputs, "CoachStream") == {"apiUrl": "https://api", "issuer": "https://issuer"}
    assert flatten({"OtherApi": {"apiUrl": "x"}}, "CoachStream") == {"apiUrl": "x"}
    with pytest.raises(SystemExit, match="CoachStreamApi"):
        flatten({}, "CoachStream")
