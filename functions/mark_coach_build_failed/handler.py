"""mark-coach-build-failed: the build function's on-failure destination, invoked by Lambda with the record of
a coach build that failed every attempt; marks the session's build failed and counts it (`CoachBuildsFailed`).

Thin on purpose: the settings and the worker from its composition root (`shared/composition/build_failures.py`).
"""

from __future__ import annotations

from functions.catalog import MARK_COACH_BUILD_FAILED
from shared.composition.build_failures import build_failure_worker
from shared.settings import load_settings

SETTINGS = load_settings(MARK_COACH_BUILD_FAILED.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

WORKER = build_failure_worker(SETTINGS.table_name)
process = WORKER.process
handler = WORKER.handler()
