"""Powertools' request validation, reading every body as JSON, whatever its `Content-Type`.

The contract's bodies are JSON and nothing else, and it never asked clients for a `Content-Type`:
a JSON body sent as `text/plain` has always been read as JSON. Powertools would instead parse a form
or a multipart body by its type (and fail on a multipart type without a boundary with a bare
`ValueError`, a 500), so its middleware is given this one, which knows a single way to read a body.
Whatever it refuses, `shared.api.errors` answers in the contract's words.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    def _get_body(self, app: Any) -> Any:
        """The body's JSON; a body that is no JSON at all is a validation error like any other (Powertools
        lets a body that is not UTF-8 or nests too deep escape as a bare exception: a 500)."""
        try:
            return self._parse_json_data(app)
        except RequestValidationError:
            raise
        except (ValueError, RecursionError) as exc:
            problem = {"type": "json_invalid", "loc": ("body",), "msg": "not JSON", "input": {}, "ctx": {}}
            raise RequestValidationError([problem]) from exc


def read_bodies_as_json(app: APIGatewayHttpResolver) -> None:
    """Replaces the request validation middleware Powertools made for `enable_validation=True`."""
    if not hasattr(app, "_request_validation_middleware"):
        raise TypeError("the resolver validates no request: create it with enable_validation=True")
    app._request_validation_middleware = JsonBodyValidation()  # Powertools has no public setting for it
