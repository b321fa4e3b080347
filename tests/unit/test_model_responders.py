"""The local stack's model double answers the side tasks and the interview the way the app expects."""

from __future__ import annotations

import json

from local.bedrock_double import RecordedRequest, Text
from local.model_responders import local_coach_responder
from shared.coach_conversation.router import ROUTER_PROMPT, parse_route
from shared.coach_creator.prompts import interview_request
from shared.coach_creator.questions import QUESTIONS
from shared.coach_creator.sophistication import strip_marker
from shared.models.bedrock import converse_arguments


def recorded(request, operation="converse-stream") -> RecordedRequest:
    body = json.loads(json.dumps(converse_arguments(request), default=lambda b: "<bytes>"))
    return RecordedRequest(operation=operation, model_id=request.model_id, body=body, headers={})


def played_text(script) -> str:
    return "".join(step.text for step in script.steps if isinstance(step, Text))


def test_the_interviewer_asks_the_next_question_and_reports_a_level():
    first, second = QUESTIONS[0], QUESTIONS[1]
    request = interview_request("m", first, second, [], "BEGINNER", "I follow RPE and run mesocycles")
    text, level = strip_marker(played_text(local_coach_responder(speed=100)(recorded(request))))
    assert second.text in text
    assert level == "ADVANCED"


def test_the_router_gets_json_it_can_parse():
    from shared.models import Message, ModelRequest, SystemPrompt

    request = ModelRequest(
        model_id="m",
        messages=(Message(role="user", text="I did 5x5 squats at 100kg today"),),
        system=SystemPrompt(static=ROUTER_PROMPT, cache=False),
    )
    route = parse_route(played_text(local_coach_responder(speed=100)(recorded(request, "converse"))))
    assert route.is_workout_log and not route.defaulted
