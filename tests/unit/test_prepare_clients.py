"""What a turn function makes at init: its table's clients ahead of the first request, never a failed init."""

from __future__ import annotations

import logging

import pytest

from shared.aws_clients import RATE_LIMIT
from shared.composition.turns import prepare_clients
from shared.store.dynamodb.table import coach_table, forget_tables


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
    prepare_clients("coach-table")
    repositories, limit = coach_table("coach-table"), coach_table("coach-table", RATE_LIMIT)
    assert repositories is not limit
    assert limit.meta.client.meta.config.retries["total_max_attempts"] == RATE_LIMIT.attempts
    assert coach_table("coach-table") is repositories  # made once, kept for the container


def test_a_client_that_cannot_be_made_yet_does_not_fail_the_init(monkeypatch, caplog):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with caplog.at_level(logging.WARNING):
        prepare_clients("coach-table")
    assert "first request makes them" in caplog.text
