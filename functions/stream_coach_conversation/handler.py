"""stream-coach-conversation: a coach's reply, streamed as SSE through a RESPONSE_STREAM Function URL.

Thin on purpose: the route, the settings, and the conversation's composition root; the turn handler
factory does the rest (flag, opening in the contract's order, streaming). The same handler answers
buffered under the stock runtime.
"""

from __future__ import annotations

from shared.composition.conversation import conversation_turns
from shared.composition.turns import streaming_turn_handler
from shared.http.routes import CONVERSATION_STREAM_ROUTE, Router
from shared.settings import ConversationStreamSettings, load_settings

SETTINGS = load_settings(ConversationStreamSettings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it.

The model `functions/catalog.py` names for this function (a unit test holds the two together); the catalog
itself, every function described for the CDK app and the local stack, is not imported at cold start."""

handler = streaming_turn_handler(Router([CONVERSATION_STREAM_ROUTE]), lambda: conversation_turns(SETTINGS))
