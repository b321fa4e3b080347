"""coach-conversation-post-turn: the work after a reply (workout, memory, summary), from the table's stream.

A turn writes its post-turn job with its reply, in one transaction (an outbox item); the table's stream
delivers it here in small batches through an event source mapping (`functions/catalog.py`). Thin on purpose:
the settings and the worker from its composition root. A record that is not a job is dropped without retry;
a job that fails is reported as a batch item failure, so the mapping retries it, then keeps it in its
dead-letter queue.
"""

from __future__ import annotations

from functions.catalog import COACH_CONVERSATION_POST_TURN
from shared.composition.jobs import post_turn_worker
from shared.settings import load_settings

SETTINGS = load_settings(COACH_CONVERSATION_POST_TURN.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

WORKER = post_turn_worker(SETTINGS)
process = WORKER.process_stream
handler = WORKER.stream_handler()
