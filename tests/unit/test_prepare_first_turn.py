"""What a turn function does at init: its table's clients, the flags and the issuer's keys ahead of the first
request, never a failed init."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from local.issuer import LOCAL_CLIENT_ID, LocalIssuer
from shared.aws_clients import RATE_LIMIT
from shared.composition.turns import prepare_first_turn
from shared.http import auth
from shared.settings import reset_settings
from shared.store.dynamodb.table import coach_table, forget_tables
from tests.fixtures.jwks_server import JwksServer, serving


@pytest.fixture(autouse=True)
def fresh_tables(monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    forget_tables()
    yield
    forget_tables()


def test_the_clients_a_turn_needs_are_made_at_init(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # Lambda sets it, with AWS_REGION
    prepare_first_turn("coach-table")
    repositories, limit = coach_table("coach-table"), coach_table("coach-table", RATE_LIMIT)
    assert repositories is not limit
    assert limit.meta.client.meta.config.retries["total_max_attempts"] == RATE_LIMIT.attempts
    assert coach_table("coach-table") is repositories  # made once, kept for the container


def test_a_client_that_cannot_be_made_yet_does_not_fail_the_init(monkeypatch, caplog):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with caplog.at_level(logging.WARNING):
        prepare_first_turn("coach-table")
    assert "first request makes them" in caplog.text


@pytest.fixture
def pool(monkeypatch, tmp_path) -> Iterator[tuple[JwksServer, LocalIssuer]]:
    """A user pool's keys over loopback HTTP, the function's settings naming it as their issuer."""
    with serving(JwksServer()) as server:
        issuer = LocalIssuer.load_or_create(tmp_path, issuer=server.pool_url)
        server.document = issuer.jwks()
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("JWT_ISSUER", server.pool_url)
        monkeypatch.setenv("JWT_AUDIENCE", LOCAL_CLIENT_ID)
        reset_settings()
        auth.default_verifier.cache_clear()
        auth._CACHES.clear()
        yield server, issuer
        reset_settings()
        auth.default_verifier.cache_clear()
        auth._CACHES.clear()


def test_the_issuers_keys_are_fetched_at_init_so_the_first_token_waits_for_none(pool):
    server, issuer = pool
    prepare_first_turn("coach-table")
    assert len(server.requests) == 1
    assert auth.authenticate(f"Bearer {issuer.mint('user-1')}").user_id == "user-1"
    assert len(server.requests) == 1


def test_keys_that_cannot_be_fetched_at_init_are_fetched_by_the_first_token_at_once(pool, caplog):
    server, issuer = pool
    document, server.document = server.document, {"keys": "not a list"}
    with caplog.at_level(logging.WARNING):
        prepare_first_turn("coach-table")
    assert "JWKS fetch" in caplog.text
    server.document = document
    assert auth.authenticate(f"Bearer {issuer.mint('user-1')}").user_id == "user-1"  # no backoff from init
    assert len(server.requests) == 2
