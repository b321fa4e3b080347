"""Every route of the coach API, declared once: template, method and typed path parameters.

The same `Route` objects give Powertools its rules (`{name}` becomes `<name>`), parse and validate
the ids of a matched path (the rules of `shared.http.routes`: an id that cannot be valid is a 404),
and tell an unknown path (404) from a known path with the wrong method (405).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from shared.http.routes import Id, PathParams, Route, Router


class NoParams(PathParams):
    pass


class UserPath(PathParams):
    user_id: Id = Field(alias="userId")


class CoachPath(UserPath):
    coach_id: Id = Field(alias="coachId")


class ConversationPath(CoachPath):
    conversation_id: Id = Field(alias="conversationId")


class CreatorSessionPath(UserPath):
    session_id: Id = Field(alias="sessionId")


COACHES = "/users/{userId}/coaches"
COACH = f"{COACHES}/{{coachId}}"
CONVERSATIONS = f"{COACH}/conversations"
CREATOR_SESSIONS = "/users/{userId}/coach-creator-sessions"

LIST_COACHES: Route[UserPath] = Route("GET", COACHES, UserPath)
GET_COACH: Route[CoachPath] = Route("GET", COACH, CoachPath)
CREATE_CONVERSATION: Route[CoachPath] = Route("POST", CONVERSATIONS, CoachPath)
GET_CONVERSATION: Route[ConversationPath] = Route("GET", f"{CONVERSATIONS}/{{conversationId}}", ConversationPath)
CREATE_CREATOR_SESSION: Route[UserPath] = Route("POST", CREATOR_SESSIONS, UserPath)
GET_CREATOR_SESSION: Route[CreatorSessionPath] = Route("GET", f"{CREATOR_SESSIONS}/{{sessionId}}", CreatorSessionPath)
GET_CONFIG: Route[NoParams] = Route("GET", "/config", NoParams)

ROUTES: tuple[Route[Any], ...] = (
    LIST_COACHES,
    GET_COACH,
    CREATE_CONVERSATION,
    GET_CONVERSATION,
    CREATE_CREATOR_SESSION,
    GET_CREATOR_SESSION,
    GET_CONFIG,
)
ANSWERED_ELSEWHERE: tuple[Route[Any], ...] = (Route("PUT", f"{CREATOR_SESSIONS}/{{sessionId}}", CreatorSessionPath),)
"""Methods of this API's paths that another function serves (the creator's fallback): the HTTP API sends
every other method of a path here, so the `Allow` of a 405 must name them too."""

ROUTER = Router((*ROUTES, *ANSWERED_ELSEWHERE))
"""Only for the verdict on a request no endpoint took: 404 or 405."""

_PARAM = re.compile(r"\{(\w+)\}")


def powertools_rule(template: str) -> str:
    """`/users/{userId}` as Powertools writes it: `/users/<userId>`."""
    return _PARAM.sub(r"<\1>", template)
