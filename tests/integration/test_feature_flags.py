"""Rollback in seconds, locally: flip the streaming flag in the local AppConfig and, within the functions'
cache age and without restarting anything, the stream answers 503 `STREAMING_DISABLED` and `/config` says so.

A stack of its own: the conversation stream and the REST API, with `FLAGS_MAX_AGE_SECONDS=1` (a local override;
a deploy keeps at least AppConfig's 15 s), so the change shows within a second or two.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from functions.catalog import COACH_API, STREAM_COACH_CONVERSATION
from infra.feature_flags import FlagNames
from local.appconfig_profile import FLAGS_FILE, set_flags
from local.processes import free_port
from local.stack import LocalStack, StackPorts
from shared.flags import FlagValues, user_bucket

pytestmark = pytest.mark.integration

MAX_AGE_SECONDS = 1
# Every environment of a function keeps its own cache: each sees a change within the age, plus a poll.
WITHIN = MAX_AGE_SECONDS + 4
T = TypeVar("T")


@pytest.fixture(scope="module")
def flags_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    definitions = (STREAM_COACH_CONVERSATION, COACH_API)
    ports = StackPorts(
        api=free_port(),
        dynamodb=free_port(),
        bedrock=free_port(),
        lambda_api=free_port(),
        appconfig=free_port(),
        function_urls={STREAM_COACH_CONVERSATION.name: free_port()},
    )
    local = LocalStack(
        ports,
        tmp_path_factory.mktemp("flags-state"),
        definitions,
        concurrency=4,
        prewarmed=1,
        extra_environment={"FLAGS_MAX_AGE_SECONDS": str(MAX_AGE_SECONDS)},
        model="double",
        deploy_environ={"REST_STREAMING": "false"},  # the REST streaming API wants both streaming functions
        overrides_file=None,
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture
def flags_file(flags_stack: LocalStack) -> Iterator[Path]:
    path = flags_stack.state_dir / FLAGS_FILE
    yield path
    set_flags(path, streaming=True, percentage=100)  # as deployed, for the next test
    time.sleep(MAX_AGE_SECONDS + 0.5)


def _stream(stack: LocalStack, token: str | None) -> httpx.Response:
    demo = stack.demo
    path = f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}/stream"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = stack.function_urls[STREAM_COACH_CONVERSATION.name].url + path
    with httpx.stream("POST", url, headers=headers, json={"userResponse": "Flag check"}, timeout=30) as response:
        first = next(response.iter_lines(), "") if response.status_code == 200 else response.read().decode()
    response.first = first  # type: ignore[attr-defined]
    return response


def _config(stack: LocalStack, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{stack.outputs()['apiUrl']}/config", headers=headers, timeout=10).json()


def _first_changed(fetch: Callable[[], T], changed: Callable[[T], bool], within: float) -> tuple[T, float]:
    """The first answer that shows the change, and how long it took.

    Each environment keeps its own cache, so the answer after this one may come from an environment that has
    not refreshed yet: assert on the answer that showed the change, never on a fresh request.
    """
    started = time.monotonic()
    while not changed(answer := fetch()):
        assert time.monotonic() - started < within, f"not within {within}s"
        time.sleep(0.2)
    return answer, time.monotonic() - started


def test_the_functions_are_told_the_templates_appconfig_names_and_the_double_serves_them(flags_stack):
    names = FlagNames.of("coach-stream")
    for name in (STREAM_COACH_CONVERSATION.name, COACH_API.name):
        env = flags_stack.functions[name].spec.environment
        assert (env["APPCONFIG_APPLICATION"], env["APPCONFIG_ENVIRONMENT"], env["APPCONFIG_FLAGS_PROFILE"]) == (
            names.application,
            names.environment,
            names.profile,
        )
        assert flags_stack.appconfig is not None
        assert env["AWS_ENDPOINT_URL_APPCONFIGDATA"] == flags_stack.appconfig.url
    profile = flags_stack.appconfig.flags.profile
    assert (profile.application, profile.environment, profile.profile) == (
        names.application,
        names.environment,
        names.profile,
    )
    assert json.loads((flags_stack.state_dir / FLAGS_FILE).read_text()) == FlagValues(True, 100).document()


def test_streaming_off_reaches_the_stream_and_config_within_the_cache_age_without_a_restart(flags_stack, flags_file):
    token = flags_stack.issuer.mint(flags_stack.demo["userId"])
    on = _stream(flags_stack, token)
    assert on.status_code == 200 and '"type":"start"' in on.first.replace(" ", "")
    assert _config(flags_stack)["features"] == {"streamingEnabled": True, "streamingPercentage": 100}
    workers = {name: set(fn.environments) for name, fn in flags_stack.functions.items()}

    set_flags(flags_file, streaming=False)
    off, elapsed = _first_changed(lambda: _stream(flags_stack, token), lambda r: r.status_code != 200, WITHIN)
    assert off.status_code == 503 and json.loads(off.first)["error"]["code"] == "STREAMING_DISABLED"
    config, _ = _first_changed(
        lambda: _config(flags_stack, token), lambda c: c["features"]["streamingEnabled"] is False, WITHIN
    )
    assert config["useStreaming"] is False
    assert elapsed < WITHIN

    set_flags(flags_file, streaming=True)
    _first_changed(lambda: _stream(flags_stack, token), lambda r: r.status_code == 200, WITHIN)
    assert {name: set(fn.environments) >= workers[name] for name, fn in flags_stack.functions.items()} == {
        name: True for name in workers
    }  # the same environments served throughout: nothing restarted


def test_the_rollout_percentage_follows_the_users_stable_bucket(flags_stack, flags_file):
    user_id = next(f"user-{n}" for n in range(1000) if 5 <= user_bucket(f"user-{n}") <= 95)
    token = flags_stack.issuer.mint(user_id)
    bucket = user_bucket(user_id)
    set_flags(flags_file, percentage=bucket)
    below, _ = _first_changed(
        lambda: _config(flags_stack, token), lambda c: c["features"]["streamingPercentage"] == bucket, WITHIN
    )
    assert below["useStreaming"] is False
    set_flags(flags_file, percentage=bucket + 1)
    above, _ = _first_changed(
        lambda: _config(flags_stack, token), lambda c: c["features"]["streamingPercentage"] == bucket + 1, WITHIN
    )
    assert above["useStreaming"] is True
