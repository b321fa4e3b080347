"""Route templates with typed path parameters, matched against the event's `rawPath`.

A template such as `/users/{userId}/coaches/{coachId}` is compiled once to a regex in which every
`{name}` is exactly one non-empty path segment. The segments are percent-decoded only after the
match, so an encoded `/` (`%2F`) can never split or join segments, and then validated by the
route's frozen pydantic model, which is what handlers receive.

Decisions the tests pin down:
- a trailing slash, an empty segment or an extra segment is a different path: 404;
- literal segments are compared as sent (no decoding), parameters are decoded (`%5F` is `_`);
- a path with the right shape but an id that cannot be valid is 404, not 400 (see `Route.parse`);
- a known path with the wrong method is 405 with an `Allow` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, NamedTuple, TypeVar
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.errors import NotFound
from shared.http.errors import MethodNotAllowed

ID_PATTERN = r"^[A-Za-z0-9_-]+$"
ID_MAX_LENGTH = 128

Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
"""An id as it appears in a path: 1 to 128 of `[A-Za-z0-9_-]`, so it is always one safe segment."""

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class PathParams(BaseModel):
    """Base of path models: immutable, and every template parameter must be a declared field."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ConversationStreamPath(PathParams):
    user_id: Id = Field(alias="userId")
    coach_id: Id = Field(alias="coachId")
    conversation_id: Id = Field(alias="conversationId")


class CreatorSessionStreamPath(PathParams):
    user_id: Id = Field(alias="userId")
    session_id: Id = Field(alias="sessionId")


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class RoutePattern:
    """A compiled template; knows the shape of a path, not what its parameters mean."""

    template: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.template.startswith("/") or (self.template != "/" and self.template.endswith("/")):
            raise ValueError(f"template must start and not end with '/': {self.template!r}")
        parts: list[str] = []
        names: list[str] = []
        for segment in self.template[1:].split("/") if self.template != "/" else []:
            param = _PARAM.match(segment)
            if param:
                name = param.group(1)
                if name in names:
                    raise ValueError(f"duplicate parameter {name!r} in {self.template!r}")
                names.append(name)
                parts.append(f"(?P<{name}>[^/]+)")
            elif not segment or "{" in segment or "}" in segment:
                raise ValueError(f"bad segment {segment!r} in {self.template!r}")
            else:
                parts.append(re.escape(segment))
        object.__setattr__(self, "regex", re.compile("/" + "/".join(parts)))
        object.__setattr__(self, "names", tuple(names))

    def match(self, path: str) -> dict[str, str] | None:
        """The percent-decoded parameters if `path` has this shape, else None.

        A segment that does not decode to UTF-8 comes back undecoded; the id model then refuses it.
        """
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: _decode(value) for name, value in found.groupdict().items()}


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return segment


@dataclass(frozen=True)
class Route(Generic[P]):
    """One method on one template, with the model its parameters must satisfy."""

    method: str
    template: str
    params_model: type[P]
    pattern: RoutePattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "pattern", RoutePattern(self.template))
        fields = {info.alias or name for name, info in self.params_model.model_fields.items()}
        if set(self.pattern.names) != fields:
            raise ValueError(f"{self.template!r} does not match the fields of {self.params_model.__name__}")

    def parse(self, path: str) -> P:
        """The typed parameters of `path`, or `NotFound`.

        An id that fails validation is a 404, not a 400: no resource can live at such a path, so
        the honest answer is that it does not exist. It also keeps path probing from learning the
        id rules, and matches what a lookup of a well-formed but unknown id answers.
        """
        params = self.pattern.match(path)
        if params is None:
            raise NotFound()
        return self.validate(params)

    def validate(self, params: dict[str, str]) -> P:
        try:
            return self.params_model.model_validate(params)
        except ValidationError:
            raise NotFound() from None


class RouteMatch(NamedTuple):
    route: Route[Any]
    params: BaseModel


class Router:
    """A handful of routes, checked in order: 404 for an unknown path, 405 for a wrong method."""

    def __init__(self, routes: Iterable[Route[Any]]) -> None:
        self.routes: tuple[Route[Any], ...] = tuple(routes)

    def match(self, method: str, path: str) -> RouteMatch:
        """The route for `method` and `path` with its validated parameters.

        The path is resolved first: if no route of this shape accepts its ids, the resource cannot
        exist whatever the method, so that is a 404 before any 405.
        """
        method = method.upper()
        allowed: list[str] = []
        for route in self.routes:
            raw = route.pattern.match(path)
            if raw is None:
                continue
            try:
                params = route.validate(raw)
            except NotFound:
                continue
            if route.method == method:
                return RouteMatch(route, params)
            if route.method not in allowed:
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise NotFound()


CONVERSATION_STREAM_ROUTE: Route[ConversationStreamPath] = Route(
    "POST",
    "/users/{userId}/coaches/{coachId}/conversations/{conversationId}/stream",
    ConversationStreamPath,
)
CREATOR_SESSION_STREAM_ROUTE: Route[CreatorSessionStreamPath] = Route(
    "POST",
    "/users/{userId}/coach-creator-sessions/{sessionId}/stream",
    CreatorSessionStreamPath,
)
