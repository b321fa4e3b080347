"""The streaming flags in AppConfig: fixed names, a freeform profile in Powertools' schema with the configured
values, an immediate strategy, and each flag reader allowed to read exactly that profile."""

from __future__ import annotations

import json

import jsonschema
import pytest

from functions.catalog import COACH_API, FUNCTIONS, STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION
from infra.config import ConfigError, InfraConfig
from infra.feature_flags import READ_ACTIONS, FlagNames
from shared.flags import DOCUMENT_SCHEMA, FlagValues
from shared.settings import FlagSettings
from tests.infra.cfn import as_list, flatten, function_by_name, resources, statements_of


def _one(template, type_):
    (found,) = resources(template, type_).items()
    return found


def test_application_environment_and_profile_have_the_fixed_names(synthesized):
    template = synthesized.raw("api")
    names = FlagNames.of(synthesized.config.name_prefix)
    _, app = _one(template, "AWS::AppConfig::Application")
    _, env = _one(template, "AWS::AppConfig::Environment")
    _, profile = _one(template, "AWS::AppConfig::ConfigurationProfile")
    assert app["Properties"]["Name"] == names.application
    assert env["Properties"]["Name"] == names.environment
    assert profile["Properties"]["Name"] == names.profile
    assert profile["Properties"]["Type"] == "AWS.Freeform"  # Powertools' schema; see infra/feature_flags.py
    assert profile["Properties"]["LocationUri"] == "hosted"


def test_the_first_version_holds_the_configured_values_and_passes_the_profiles_validator(synthesized):
    template = synthesized.raw("api")
    _, version = _one(template, "AWS::AppConfig::HostedConfigurationVersion")
    _, profile = _one(template, "AWS::AppConfig::ConfigurationProfile")
    document = json.loads(version["Properties"]["Content"])
    config = synthesized.config
    assert version["Properties"]["ContentType"] == "application/json"
    assert document == FlagValues(config.streaming_enabled, config.streaming_percentage).document()
    (validator,) = profile["Properties"]["Validators"]
    assert validator["Type"] == "JSON_SCHEMA"
    schema = json.loads(validator["Content"])
    assert schema == DOCUMENT_SCHEMA
    jsonschema.validate(document, schema)
    bad = {**document, "streaming_percentage": {"default": 101, "boolean_type": False}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_fake_catalog_deploys_its_own_settings(fake):
    _, version = _one(fake.raw("api"), "AWS::AppConfig::HostedConfigurationVersion")
    assert json.loads(version["Properties"]["Content"]) == FlagValues(False, 25).document()


def test_the_deployment_is_immediate_and_targets_the_environment(synthesized):
    template = synthesized.raw("api")
    strategy_id, strategy = _one(template, "AWS::AppConfig::DeploymentStrategy")
    env_id, _ = _one(template, "AWS::AppConfig::Environment")
    _, deployment = _one(template, "AWS::AppConfig::Deployment")
    props = strategy["Properties"]
    assert props["Name"] == FlagNames.of(synthesized.config.name_prefix).strategy
    assert (props["GrowthFactor"], props["DeploymentDurationInMinutes"], props["FinalBakeTimeInMinutes"]) == (100, 0, 0)
    assert props["GrowthType"] == "LINEAR"
    assert deployment["Properties"]["DeploymentStrategyId"] == {"Ref": strategy_id}
    assert deployment["Properties"]["EnvironmentId"] == {"Ref": env_id}


def test_flag_readers_get_the_names_and_may_read_only_that_profile(synthesized):
    template = synthesized.raw("api")
    names = FlagNames.of(synthesized.config.name_prefix)
    app_id, _ = _one(template, "AWS::AppConfig::Application")
    env_id, _ = _one(template, "AWS::AppConfig::Environment")
    profile_id, _ = _one(template, "AWS::AppConfig::ConfigurationProfile")
    expected_arn = (
        f"arn:<AWS::Partition>:appconfig:<AWS::Region>:<AWS::AccountId>:application/<{app_id}>"
        f"/environment/<{env_id}>/configuration/<{profile_id}>"
    )
    readers: set[str] = set()
    for definition in synthesized.definitions:
        _, fn = function_by_name(template, f"{synthesized.config.name_prefix}-{definition.name}")
        env = fn["Properties"]["Environment"]["Variables"]
        statements = statements_of(template, fn["Properties"]["Role"]["Fn::GetAtt"][0])
        appconfig = [s for s in statements if any(a.startswith("appconfig:") for a in as_list(s["Action"]))]
        if not issubclass(definition.settings, FlagSettings):
            assert not appconfig and "APPCONFIG_APPLICATION" not in env, definition.name
            continue
        readers.add(definition.name)
        assert {k: env[k] for k in names.variables(0) if k != "FLAGS_MAX_AGE_SECONDS"} == {
            "APPCONFIG_APPLICATION": names.application,
            "APPCONFIG_ENVIRONMENT": names.environment,
            "APPCONFIG_FLAGS_PROFILE": names.profile,
        }
        assert env["FLAGS_MAX_AGE_SECONDS"] == str(synthesized.config.flags_max_age_seconds)
        (statement,) = appconfig
        assert sorted(as_list(statement["Action"])) == sorted(READ_ACTIONS)
        assert [flatten(r) for r in as_list(statement["Resource"])] == [expected_arn]
    if synthesized.definitions == FUNCTIONS:  # who reads the flags: the streams (on or off) and `/config`
        assert readers == {STREAM_COACH_CONVERSATION.name, STREAM_COACH_CREATOR_SESSION.name, COACH_API.name}
    assert readers


@pytest.mark.parametrize("seconds", ["14", "3601"])
def test_a_cache_age_appconfig_would_refuse_as_poll_interval_fails_the_synth(seconds):
    with pytest.raises(ConfigError, match="flagsMaxAgeSeconds"):
        InfraConfig.load({"flagsMaxAgeSeconds": seconds}, environ={})
