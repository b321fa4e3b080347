"""coach-conversation-post-turn: the work after a reply (workout, memory, summary), invoked asynchronously.

Thin on purpose: the settings and the worker from its composition root. An invalid payload is
dropped without retry; any other failure raises, so Lambda's async retries run the job again.
"""

from __future__ import annotations

from functions.catalog import COACH_CONVERSATION_POST_TURN
from shared.composition.jobs import post_turn_worker
from shared.settings import load_settings

SETTINGS = load_settings(COACH_CONVERSATION_POST_TURN.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

WORKER = post_turn_worker(SETTINGS)
process = WORKER.process
handler = WORKER.handler()
