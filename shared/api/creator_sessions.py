"""Coach creator sessions: start one, read one back (CONTRACT.md section 3).

Answers go through the streaming function or its fallback, never through here: these two routes
only create the session item and show it, so they need no claim and no model.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from shared.api.bodies import CreateCreatorSessionBody
from shared.api.documented import operation
from shared.api.paths import CREATE_CREATOR_SESSION, GET_CREATOR_SESSION, CreatorSessionPath, UserPath
from shared.api.routing import endpoint
from shared.api.schemas import CreatorSessionStarted, CreatorSessionView
from shared.api.services import Services
from shared.coach_creator.history import answered_ids
from shared.coach_creator.questions import Level, Question, next_question, progress, question_by_id
from shared.errors import InternalError, NotFound
from shared.store.records import CreatorSession

router = Router()

FIRST_LEVEL: Level = "BEGINNER"  # nothing is known about the user before the first answer


@endpoint(
    router,
    CREATE_CREATOR_SESSION,
    body=CreateCreatorSessionBody,
    doc=operation("Start a coach creator interview", CreatorSessionStarted, status=201, body=True),
)
def create_creator_session(path: UserPath, services: Services, _: CreateCreatorSessionBody) -> Response:
    first = next_question((), FIRST_LEVEL)
    if first is None:
        raise InternalError("the question set is empty")
    session = services.sessions.create_session(path.user_id, first.id)
    body = {
        "sessionId": session.session_id,
        "question": _shown(first),
        "progressDetails": progress((), session.sophistication_level).contract(),
        "isComplete": False,
    }
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


@endpoint(router, GET_CREATOR_SESSION, doc=operation("A coach creator interview so far", CreatorSessionView))
def get_creator_session(path: CreatorSessionPath, services: Services) -> dict[str, Any]:
    session = services.sessions.get_session(path.user_id, path.session_id)
    if session is None:
        raise NotFound("coach creator session not found")
    answered = answered_ids(session)  # failed attempts are listed in `history` but answer nothing
    current = _current_question(session, answered)
    shown: dict[str, Any] = {
        "sessionId": session.session_id,
        "history": [qa.api() for qa in session.history],
        "currentQuestion": _shown(current) if current else None,
        "progressDetails": progress(answered, session.sophistication_level).contract(),
        "isComplete": session.is_complete,
        "sophisticationLevel": session.sophistication_level,
        "coachConfigStatus": session.coach_config_status,
    }
    if session.coach_id:
        shown["coachId"] = session.coach_id
    return shown


def _current_question(session: CreatorSession, answered: set[str]) -> Question | None:
    """The question waiting for an answer; a session from an older question set gets the next one."""
    if session.is_complete:
        return None
    if session.current_question_id:
        try:
            return question_by_id(session.current_question_id)
        except KeyError:
            pass
    return next_question(answered, session.sophistication_level)


def _shown(question: Question) -> dict[str, str]:
    return {"id": question.id, "text": question.text}
