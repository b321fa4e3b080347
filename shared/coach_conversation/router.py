"""The one auxiliary model call before the reply: what kind of message is this?

A small model answers with JSON. Models do not always comply, so parsing is forgiving (the first
JSON object in the text, unknown fields ignored, missing ones defaulted) and any failure yields
the default route: the reply still comes, only the extras are skipped.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from shared.json_text import first_json_object
from shared.models import Message, ModelError, ModelPort, ModelRequest, SystemPrompt

logger = logging.getLogger(__name__)

ROUTER_PROMPT = """You classify one message a user sent to their fitness coach.
Answer with a single JSON object and nothing else, with exactly these keys:
{"isWorkoutLog": true|false, "hasMemoryToSave": true|false, "needsMemoryRetrieval": true|false,
 "complexity": "simple"|"moderate"|"complex"}
- isWorkoutLog: the user reports a workout they did (exercises, sets, reps, distance, time).
- hasMemoryToSave: the user states a lasting fact worth remembering (injury, goal, schedule, preference).
- needsMemoryRetrieval: a good answer depends on things the user said in earlier conversations.
- complexity: how much thought the answer needs."""


class RouteDecision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)

    is_workout_log: bool = False
    has_memory_to_save: bool = False
    needs_memory_retrieval: bool = False
    complexity: Literal["simple", "moderate", "complex"] = "moderate"
    defaulted: bool = False


DEFAULT_ROUTE = RouteDecision(defaulted=True)


def parse_route(text: str) -> RouteDecision:
    found = first_json_object(text)
    if found is None:
        logger.warning("router answered without JSON")
        return DEFAULT_ROUTE
    try:
        return RouteDecision.model_validate(found)
    except ValidationError:
        logger.warning("router JSON did not fit the schema")
        return DEFAULT_ROUTE


def decide_route(model: ModelPort, model_id: str, user_text: str) -> RouteDecision:
    request = ModelRequest(
        model_id=model_id,
        messages=(Message(role="user", text=user_text),),
        system=SystemPrompt(static=ROUTER_PROMPT, cache=False),
        max_tokens=120,
        temperature=0.0,
    )
    try:
        return parse_route(model.converse(request).text)
    except ModelError as exc:
        logger.warning("router call failed (%s); using the default route", exc.cause or exc)
        return DEFAULT_ROUTE
