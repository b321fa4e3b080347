"""Fixtures shared by pytest discovery; the logic lives in `tests.fixtures`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.aws import moto_coach_table
from tests.fixtures.capture_runtime import CaptureRuntimeApi


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The coach table in moto's DynamoDB, with the environment the code under test reads."""
    with moto_coach_table(monkeypatch, "unit-test") as created:
        yield created


@pytest.fixture
def runtime() -> Iterator[CaptureRuntimeApi]:
    """A Runtime API that serves queued events and records every request byte for byte."""
    api = CaptureRuntimeApi()
    yield api
    api.close()
