"""stream-coach-creator-session: one interview answer, streamed as SSE through a Function URL.

Thin on purpose: the route, the settings, and the creator's composition root; the turn handler
factory does the rest (flag, opening in the contract's order, streaming).
"""

from __future__ import annotations

from shared.composition.creator import creator_turns
from shared.composition.turns import streaming_turn_handler
from shared.http.routes import CREATOR_SESSION_STREAM_ROUTE, Router
from shared.settings import CreatorStreamSettings, load_settings

SETTINGS = load_settings(CreatorStreamSettings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it.

The model `functions/catalog.py` names for this function (a unit test holds the two together); the catalog
itself, every function described for the CDK app and the local stack, is not imported at cold start."""

handler = streaming_turn_handler(Router([CREATOR_SESSION_STREAM_ROUTE]), lambda: creator_turns(SETTINGS))
