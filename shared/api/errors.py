"""Every failure as the contract's `{"error": {"code", "message"}}` with its status (CONTRACT.md §2).

Typed `HttpError`s carry their own status; a request no endpoint took is a 404, or a 405 with an
`Allow` header when the path is known; anything else is a 500 whose message says nothing of the
internals (the exception goes to the log only).
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from shared.api.paths import ROUTER
from shared.http.errors import HttpError, InternalError, NotFound
from shared.observability import count_error, logger


def error_response(error: HttpError) -> Response:
    count_error(error.code)
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=error.body_json(),
        headers=error.headers,
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(HttpError)
    def http_error(error: HttpError) -> Response:
        if error.status == InternalError.status:
            logger.error("request failed", extra={"code": error.code, "reason": error.message})
            error = InternalError()  # whatever the message said, it stays in the log
        else:
            logger.info("request refused", extra={"code": error.code, "reason": error.message})
        return error_response(error)

    @app.not_found
    def unknown_route(_: NotFoundError) -> Response:
        event = app.current_event
        ROUTER.match(event.http_method, event.path)  # raises NotFound or MethodNotAllowed
        raise NotFound()  # unreachable unless Powertools and our templates disagree

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(InternalError())
