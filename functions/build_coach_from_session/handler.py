"""build-coach-from-session: the coach an interview built, invoked asynchronously.

Thin on purpose: the settings and the worker from its composition root. An invalid payload is
dropped without retry; any other failure raises, so Lambda's async retries run the job again,
which the builder's idempotent writes make safe.
"""

from __future__ import annotations

from functions.catalog import BUILD_COACH_FROM_SESSION
from shared.composition.jobs import coach_builder_worker
from shared.settings import load_settings

SETTINGS = load_settings(BUILD_COACH_FROM_SESSION.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

WORKER = coach_builder_worker(SETTINGS)
process = WORKER.process
handler = WORKER.handler()
