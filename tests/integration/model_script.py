"""Per-test behaviour of the stack's Bedrock double, chosen by what each request is for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from local.bedrock_double import CoachResponder, RecordedRequest, Script, Text


def router_reply(delay: float = 0.0, **flags: object) -> Script:
    decision = {
        "isWorkoutLog": False,
        "hasMemoryToSave": False,
        "needsMemoryRetrieval": False,
        "complexity": "simple",
    }
    decision.update(flags)
    return Script.reply(json.dumps(decision), delay=delay)


@dataclass
class TurnScript:
    """The router gets `router`, the reply stream gets `reply`, a fallback `converse` of the reply
    gets `fallback`; anything else (post-turn work) gets the default coach responder."""

    reply: Script
    router: Script = field(default_factory=router_reply)
    fallback: Script | None = None
    default: CoachResponder = field(default_factory=lambda: CoachResponder(speed=50))

    def __call__(self, request: RecordedRequest) -> Script:
        if any("isWorkoutLog" in text for text in request.system_texts):
            return self.router
        if request.streaming:
            return self.reply
        if self.fallback is not None and any("AI fitness coach" in text for text in request.system_texts):
            return self.fallback
        return self.default(request)


def pieces(*texts: str, delay: float = 0.01, first_delay: float | None = None) -> tuple[Text, ...]:
    return tuple(
        Text(text, first_delay if index == 0 and first_delay is not None else delay) for index, text in enumerate(texts)
    )
