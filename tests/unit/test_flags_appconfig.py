"""The local AppConfig Data against botocore's own client, and the functions' AppConfig source (Powertools
Feature Flags on an AppConfigStore) against it: the protocol, a change without a restart, and failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from local.appconfig_double import AppConfigDataDouble
from local.appconfig_profile import FlagsFile, LocalProfile, ProfileError, local_id, set_flags
from shared.flags import DOCUMENT_SCHEMA, AppConfigSource, CachedFlags, FlagValues

NAMES = ("coach-stream", "live", "streaming-flags")


def _profile() -> LocalProfile:
    return LocalProfile(*NAMES, json.dumps(FlagValues(True, 100).document()), "application/json", DOCUMENT_SCHEMA)


@pytest.fixture
def flags_file(tmp_path: Path) -> FlagsFile:
    found = FlagsFile(tmp_path / "feature-flags.json", _profile())
    found.deploy_initial()
    return found


@pytest.fixture
def double(flags_file: FlagsFile) -> Iterator[AppConfigDataDouble]:
    server = AppConfigDataDouble(flags_file, shortest_poll_seconds=1).start()
    yield server
    server.stop()


@pytest.fixture
def client(double: AppConfigDataDouble, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_APPCONFIGDATA", double.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "coach-stream-coach-api")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client("appconfigdata")


def _session(client, interval: int = 15, names: tuple[str, str, str] = NAMES) -> str:
    app, env, profile = names
    return client.start_configuration_session(
        ApplicationIdentifier=app,
        EnvironmentIdentifier=env,
        ConfigurationProfileIdentifier=profile,
        RequiredMinimumPollIntervalInSeconds=interval,
    )["InitialConfigurationToken"]


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


def test_botocore_reads_a_session_its_configuration_and_an_empty_body_when_unchanged(client, flags_file):
    first = client.get_latest_configuration(ConfigurationToken=_session(client))
    assert json.loads(first["Configuration"].read()) == FlagValues(True, 100).document()
    assert first["ContentType"] == "application/json"
    assert first["NextPollIntervalInSeconds"] == 15
    time.sleep(1.05)
    second = client.get_latest_configuration(ConfigurationToken=first["NextPollConfigurationToken"])
    assert second["Configuration"].read() == b""
    set_flags(flags_file.path, streaming=False, percentage=20)
    time.sleep(1.05)
    third = client.get_latest_configuration(ConfigurationToken=second["NextPollConfigurationToken"])
    assert json.loads(third["Configuration"].read()) == FlagValues(False, 20).document()


def test_ids_work_as_well_as_names(client):
    token = _session(client, names=tuple(local_id(name) for name in NAMES))  # type: ignore[arg-type]
    assert client.get_latest_configuration(ConfigurationToken=token)["Configuration"].read()


def test_an_unknown_profile_a_spent_token_and_an_early_poll_are_refused_as_aws_does(client, double):
    with pytest.raises(ClientError) as unknown:
        _session(client, names=("coach-stream", "live", "other"))
    assert _code(unknown) == "ResourceNotFoundException"
    token = _session(client)
    answer = client.get_latest_configuration(ConfigurationToken=token)
    with pytest.raises(ClientError) as spent:
        client.get_latest_configuration(ConfigurationToken=token)
    assert _code(spent) == "BadRequestException"
    with pytest.raises(ClientError) as early:
        client.get_latest_configuration(ConfigurationToken=answer["NextPollConfigurationToken"])
    assert _code(early) == "BadRequestException" and "too early" in str(early.value)
    strict = AppConfigDataDouble(double.flags).start()  # no local shortening: the session's 15 s hold
    try:
        strict_client = boto3.client("appconfigdata", endpoint_url=strict.url)
        answer = strict_client.get_latest_configuration(ConfigurationToken=_session(strict_client))
        time.sleep(1.05)
        with pytest.raises(ClientError) as early_for_aws:
            strict_client.get_latest_configuration(ConfigurationToken=answer["NextPollConfigurationToken"])
        assert "too early" in str(early_for_aws.value)
    finally:
        strict.stop()


def test_a_document_the_validator_refuses_is_not_served(client, flags_file):
    flags_file.path.write_text(json.dumps({"streaming_enabled": {"default": "off"}}))
    body = client.get_latest_configuration(ConfigurationToken=_session(client))["Configuration"].read()
    assert json.loads(body) == FlagValues(True, 100).document()
    with pytest.raises(ProfileError, match="0 to 100"):
        set_flags(flags_file.path, percentage=120)


def test_the_functions_source_follows_a_change_without_a_restart(client, double, flags_file):
    cached = CachedFlags(FlagValues(True, 100), AppConfigSource(*NAMES, max_age_seconds=1), max_age_seconds=1)
    assert cached.current() == FlagValues(True, 100)
    set_flags(flags_file.path, streaming=False, percentage=30)
    assert cached.current() == FlagValues(True, 100)  # within the age: from memory
    time.sleep(1.1)
    assert cached.current() == FlagValues(False, 30)
    # One session, polled at the age it asked for: never "too early".
    assert double.calls == ["StartConfigurationSession", "GetLatestConfiguration", "GetLatestConfiguration"]


def test_the_source_keeps_the_last_values_when_the_service_is_gone_and_recovers_with_a_new_session(
    client, double, flags_file
):
    warnings: list[str] = []
    source = AppConfigSource(*NAMES, max_age_seconds=1)
    cached = CachedFlags(FlagValues(True, 100), source, max_age_seconds=1, warn=warnings.append)
    set_flags(flags_file.path, percentage=40)
    assert cached.current() == FlagValues(True, 40)
    double.stop()
    time.sleep(1.1)
    started = time.monotonic()
    assert cached.current() == FlagValues(True, 40)
    assert time.monotonic() - started < 3  # one attempt, short timeouts
    assert len(warnings) == 1
    replacement = AppConfigDataDouble(flags_file, port=double.server_address[1], shortest_poll_seconds=1).start()
    try:
        time.sleep(1.1)
        assert cached.current() == FlagValues(True, 40)
        assert replacement.calls[0] == "StartConfigurationSession"  # the old session's token is not reused
        assert len(warnings) == 1
    finally:
        replacement.stop()


def test_at_init_the_flags_are_read_once_and_no_connection_is_left_open(client, double, flags_file):
    cached = CachedFlags(FlagValues(True, 100), AppConfigSource(*NAMES, max_age_seconds=1), max_age_seconds=1)
    set_flags(flags_file.path, percentage=70)
    cached.prepare()
    assert double.calls == ["StartConfigurationSession", "GetLatestConfiguration"]
    assert cached.current() == FlagValues(True, 70)  # the first turn reads from memory
    assert len(double.calls) == 2
    time.sleep(1.1)
    assert cached.current() == FlagValues(True, 70)
    # The same session polled, over a new connection: the init's was closed (workers may fork after init).
    assert double.calls[2:] == ["GetLatestConfiguration"]
    assert double.connections[2] not in double.connections[:2]
