"""A route's parameters as Powertools reads them: the signature its OpenAPI support documents and validates.

Path ids are declared as plain strings that carry the id rule only as documentation: Powertools sees
the raw, still percent-encoded segment, while `Route.parse` decodes it first and answers an impossible
id with 404 (CONTRACT.md), which Powertools' own check could not do. A body is declared with its model,
so Powertools validates it, and read again by `read_body` under the contract's own rules (size first,
then base64, then the words of `shared.api.bodies`) whenever Powertools refused it.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, TypeVar

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from shared.api.bodies import body_bytes, parse_optional_body
from shared.http.routes import ID_MAX_LENGTH, ID_PATTERN, Route

M = TypeVar("M", bound=BaseModel)

ID_DESCRIPTION = "an id: 1 to 128 of letters, digits, '_' and '-'"
ID_SCHEMA = {"minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": ID_PATTERN}
BODY = "body"
STREAM_QUERY = "stream"


def powertools_signature(
    route: Route[Any], body: type[BaseModel] | None = None, *, body_required: bool = False, stream_query: bool = False
) -> inspect.Signature:
    """Keyword-only parameters named as the template's, the body's model, and `?stream=` if asked for."""
    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, Path(description=ID_DESCRIPTION, json_schema_extra=ID_SCHEMA)],
        )
        for name in route.pattern.names
    ]
    if stream_query:
        flag = Query(description="`true`: the turn's events buffered into one text/event-stream body")
        annotation = Annotated[Literal["true"] | None, flag]
        parameters.append(
            inspect.Parameter(STREAM_QUERY, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )
    if body is not None:
        # an optional body is absent, never JSON `null`, which `read_body` refuses: so no `| None` here
        parameters.append(
            inspect.Parameter(
                BODY,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[body, Body(media_type="application/json")],
                **({} if body_required else {"default": None}),
            )
        )
    return inspect.Signature(parameters)


def read_body(model: type[M], event: APIGatewayProxyEventV2, validated: M | None) -> M:
    """The body under the contract's rules: 413 over the size limit even when Powertools accepted it (a
    long run of blanks may be valid), and our own parse and wording when Powertools did not provide it."""
    data = body_bytes(event.body, event.is_base64_encoded)
    if validated is not None:
        return validated
    return parse_optional_body(model, data)
