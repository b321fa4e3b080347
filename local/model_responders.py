"""What the Bedrock double answers to the side tasks in `make dev`, so the demo behaves like the app.

Each responder recognises its task by the prompt the production code sends and answers with the
JSON that prompt asks for, from simple cues in the user's words. Tests script the double instead.
"""

from __future__ import annotations

import random
import re
from typing import Any

from local.bedrock_double import CoachResponder, RecordedRequest
from shared.coach_creator.sophistication import signals_level

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


_SETS_REPS = re.compile(r"(\d+)\s*[x\u00d7]\s*(\d+)")
_WEIGHT = re.compile(r"(\d+(?:\.\d+)?)\s*(kg|lb)s?\b", re.IGNORECASE)
_EXERCISE = re.compile(r"\b(squat|bench press|bench|deadlift|overhead press|press|row|pull-?up|run|lunge)s?\b", re.I)
_DATE = re.compile(r"Message date: (\d{4}-\d{2}-\d{2})")


def _athlete_words(request: RecordedRequest) -> str:
    """The athlete's own words in a side-task prompt (after its "The athlete wrote:" line)."""
    return request.last_user_text.split("The athlete wrote:", 1)[-1].strip()


def workout(request: RecordedRequest) -> dict[str, Any] | None:
    if not any("performedOn" in text for text in request.system_texts):
        return None
    text = _athlete_words(request)
    sets_reps = _SETS_REPS.search(text)
    weight = _WEIGHT.search(text)
    exercise = _EXERCISE.search(text)
    date = _DATE.search(request.last_user_text)
    return {
        "performedOn": date.group(1) if date else None,
        "summary": " ".join(text.split()[:14]),
        "exercises": [
            {
                "name": exercise.group(1).lower() if exercise else "workout",
                "sets": int(sets_reps.group(1)) if sets_reps else None,
                "reps": int(sets_reps.group(2)) if sets_reps else None,
                "weight": float(weight.group(1)) if weight else None,
                "unit": weight.group(2).lower() if weight else None,
            }
        ],
    }


def memories(request: RecordedRequest) -> dict[str, Any] | None:
    if not any('"memories"' in text for text in request.system_texts):
        return None
    sentences = re.split(r"(?<=[.!?,])\s+", _athlete_words(request))
    return {"memories": [s.strip() for s in sentences if _FACT.search(s)][:3]}


_INJURY = re.compile(r"[^.!?\n]*\b(knee|back|shoulder|hip|ankle|wrist|injur\w*|pain|sore)\b[^.!?\n]*", re.I)


def coach_config(request: RecordedRequest) -> dict[str, Any] | None:
    """The coach builder's JSON: a named coach whose safety notes quote the injuries the user gave."""
    if not any("programFocus" in text for text in request.system_texts):
        return None
    text = request.last_user_text
    injuries = sorted({m.group(0).strip() for m in _INJURY.finditer(text)})[:3]
    return {
        "name": "Coach Morgan",
        "personality": "Encouraging and practical.",
        "methodology": "Progressive overload with regular check-ins.",
        "programFocus": "General strength and conditioning built around your schedule.",
        "safetyNotes": "; ".join(injuries) if injuries else "none reported",
        "coachingStyle": "Encouraging",
    }


_NEXT_QUESTION = re.compile(r'The next question to ask \([^)]*\): "(?P<question>[^"]+)"')


class LocalModel(CoachResponder):
    """The coach replies of `CoachResponder`, plus an interviewer that asks the next question it is given
    and ends with the sophistication marker, as the real model is asked to (the marker never shows)."""

    def coach_text(self, request: RecordedRequest, rng: random.Random) -> str:
        system = "\n".join(request.system_texts)
        if "SOPHISTICATION" not in system:
            return super().coach_text(request, rng)
        level = signals_level(request.last_user_text) or "BEGINNER"
        found = _NEXT_QUESTION.search(system)
        follow_up = found["question"] if found else "That was the last question: I'm building your coach now."
        thanks = rng.choice(("Thanks, that helps.", "Got it, noted.", "Great, that's useful to know."))
        return f"{thanks} {follow_up} [[SOPHISTICATION:{level}]]"


def local_coach_responder(speed: float = 1.0) -> CoachResponder:
    responder = LocalModel(speed=speed)
    for answer in (route, workout, memories, coach_config):
        responder.add_json_responder(answer)
    return responder
