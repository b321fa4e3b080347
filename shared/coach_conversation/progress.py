"""Short progress lines (`contextual` events) shown while the coach works.

They are made from the message and the route alone, with no model call, so they never sit on the
path to the first token of the reply.
"""

from __future__ import annotations

import re

from shared.coach_conversation.router import RouteDecision
from shared.events import ContextualEvent

_TOPICS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"\b(pain\w*|hurt\w*|injur\w*|tweak\w*|ache\w*)\b", re.IGNORECASE),
        "Taking a careful look at that...",
        "safety_check",
    ),
    (
        re.compile(r"\b(squat|bench|deadlift|press|pull-?ups?|rows?|lunges?|clean|snatch)\w*", re.IGNORECASE),
        "Scouting your recent {match} sessions...",
        "workout_analysis",
    ),
    (
        re.compile(r"\b(run|ran|running|jog|cycle|cycling|swim|swimming|row(ing)?|hike)\b", re.IGNORECASE),
        "Looking over your recent {match} training...",
        "workout_analysis",
    ),
    (
        re.compile(r"\b(sleep|sore|soreness|tired|fatigue|recover\w*|rest day)\b", re.IGNORECASE),
        "Checking how your recovery is going...",
        "recovery_check",
    ),
    (
        re.compile(r"\b(eat|food|protein|diet|calories|nutrition|meal)\w*", re.IGNORECASE),
        "Thinking about your nutrition...",
        "nutrition",
    ),
)


def opening_line(user_text: str) -> ContextualEvent:
    for pattern, template, update_type in _TOPICS:
        found = pattern.search(user_text)
        if found:
            return ContextualEvent(content=template.format(match=found.group(1).lower()), updateType=update_type)
    return ContextualEvent(content="Thinking about what you said...", updateType="thinking")


def route_lines(route: RouteDecision) -> list[ContextualEvent]:
    lines = []
    if route.is_workout_log:
        lines.append(ContextualEvent(content="Logging that workout for you...", updateType="workout_logging"))
    if route.needs_memory_retrieval:
        lines.append(ContextualEvent(content="Recalling what you've told me before...", updateType="memory_retrieval"))
    if route.has_memory_to_save:
        lines.append(ContextualEvent(content="Making a note of that...", updateType="memory_save"))
    return lines
