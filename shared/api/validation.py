"""Powertools' request validation, reading every body as JSON, whatever its `Content-Type`.

The contract's bodies are JSON and nothing else, and it never asked clients for a `Content-Type`:
a JSON body sent as `text/plain` has always been read as JSON. Powertools would instead parse a form
or a multipart body by its type (and fail on a multipart type without a boundary with a bare
`ValueError`, a 500), so its middleware is given this one, which knows a single way to read a body.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    def _get_body(self, app: Any) -> Any:
        return self._parse_json_data(app)


def read_bodies_as_json(app: APIGatewayHttpResolver) -> None:
    """Replaces the request validation middleware Powertools made for `enable_validation=True`."""
    if not hasattr(app, "_request_validation_middleware"):
        raise TypeError("the resolver validates no request: create it with enable_validation=True")
    app._request_validation_middleware = JsonBodyValidation()  # Powertools has no public setting for it
