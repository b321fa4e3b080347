"""What the Bedrock double answers to the side tasks in `make dev`, so the demo behaves like the app.

Each responder recognises its task by the prompt the production code sends and answers with the
JSON that prompt asks for, from simple cues in the user's words. Tests script the double instead.
"""

from __future__ import annotations

import re
from typing import Any

from local.bedrock_double import CoachResponder, RecordedRequest

_WORKOUT = re.compile(
    r"\b(did|ran|lifted|squat\w*|bench\w*|deadlift\w*|sets?|reps?|km|miles?|minutes?|workout)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
_FACT = re.compile(
    r"\b(my (knee|back|shoulder|goal|schedule)|i (have|prefer|train|want|can't|cannot)|injur\w*)\b", re.I
)
_RECALL = re.compile(r"\b(remember|last time|before|again|usual)\b", re.IGNORECASE)


def route(request: RecordedRequest) -> dict[str, Any] | None:
    if not any("isWorkoutLog" in text for text in request.system_texts):
        return None
    text = request.last_user_text
    words = len(text.split())
    return {
        "isWorkoutLog": bool(_WORKOUT.search(text) and _NUMBER.search(text)),
        "hasMemoryToSave": bool(_FACT.search(text)),
        "needsMemoryRetrieval": bool(_RECALL.search(text)),
        "complexity": "simple" if words < 8 else "complex" if words > 60 else "moderate",
    }


def local_coach_responder(speed: float = 1.0) -> CoachResponder:
    responder = CoachResponder(speed=speed)
    responder.add_json_responder(route)
    return responder
