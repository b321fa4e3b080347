"""Settings every test process starts from; the local stack's fixtures live in `tests/integration`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.settings import reset_settings

# A complete configuration for code imported into the test process (handler modules validate theirs at
# import): what a deployed function's template gives, with test values. Tests change it with monkeypatch.
IN_PROCESS_SETTINGS = {
    "POWERTOOLS_SERVICE_NAME": "coach-stream",
    "POWERTOOLS_METRICS_NAMESPACE": "CoachStreamTest",
    "COACH_TABLE_NAME": "unit-test",
    "JWT_ISSUER": "http://127.0.0.1:9/test-pool",
    "JWT_AUDIENCE": "test-client",
    "MODEL_ID_REPLY": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "MODEL_ID_SIDE": "us.amazon.nova-micro-v1:0",
    "UPLOADS_BUCKET": "test-uploads",
    "STREAM_TIME_BUDGET_SECONDS": "120",
    "BUILD_COACH_FROM_SESSION_FUNCTION_NAME": "coach-stream-build-coach-from-session",
}
for _name, _value in IN_PROCESS_SETTINGS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def set_setting(monkeypatch: pytest.MonkeyPatch):
    """Change one setting mid-test, as a new execution environment would see it."""

    def set_one(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        reset_settings()

    return set_one


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test reads settings from its own environment (after its monkeypatching), not a cached one."""
    reset_settings()
    yield
    reset_settings()
