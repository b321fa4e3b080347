"""At init each streaming environment fetches the issuer's signing keys, as it fetches Cognito's in AWS: the
local stack serves them before any function starts, so a first request verifies its token without a fetch
of its own, locally as deployed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from functions.catalog import FUNCTIONS, STREAM_COACH_CONVERSATION
from local.stack import LocalStack, StackPorts
from tests.fixtures.stacks import running

pytestmark = [pytest.mark.integration]

STREAMING = tuple(definition for definition in FUNCTIONS if definition.streaming)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        StackPorts.ephemeral(FUNCTIONS),
        tmp_path_factory.mktemp("init-keys"),
        FUNCTIONS,
        concurrency=1,  # one environment a function, started with the stack
        model="double",
        deploy_environ={},
        overrides_file=None,
    )
    with running(local):
        yield local


def test_each_streaming_environment_fetched_the_keys_at_init(stack):
    """Only the streaming functions prepare their first turn at init; the others verify no token."""
    assert stack.api is not None
    assert len(stack.api.keys_fetches) == len(STREAMING)


def test_a_first_request_verifies_its_token_with_the_keys_init_fetched(stack):
    assert stack.api is not None
    before = len(stack.api.keys_fetches)
    user = stack.demo["userId"]
    url = stack.function_urls[STREAM_COACH_CONVERSATION.name].url
    response = httpx.post(
        f"{url}/users/{user}/coaches/{stack.demo['coachId']}/conversations/no-such-conversation/stream",
        headers={"Authorization": f"Bearer {stack.issuer.mint(user)}"},
        json={"userResponse": "hello"},
        timeout=30,
    )
    assert response.status_code == 404, response.text  # past the token check: the conversation is unknown
    assert len(stack.api.keys_fetches) == before
