"""Every failure as the contract's `{"error": {"code", "message"}}` with its status (CONTRACT.md §2).

The status and code come from the one error table (`shared.http.errors`); a request no endpoint
took is a 404, or a 405 with an `Allow` header when the path is known; anything else is a 500 whose
message says nothing of the internals (the exception goes to the log only).
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from shared.api.paths import ROUTER
from shared.errors import CoachError, NotFound
from shared.http.errors import Problem
from shared.observability import count_error, logger


def error_response(problem: Problem) -> Response:
    count_error(problem.code)
    return Response(
        status_code=problem.status,
        content_type=content_types.APPLICATION_JSON,
        body=problem.body_json(),
        headers=problem.headers,
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(CoachError)
    def refused(error: CoachError) -> Response:
        problem = Problem.of(error)
        if problem.status >= 500:
            logger.error("request failed", extra={"code": problem.code, "reason": error.message})
        else:
            logger.info("request refused", extra={"code": problem.code, "reason": error.message})
        return error_response(problem)

    @app.not_found
    def unknown_route(_: NotFoundError) -> Response:
        event = app.current_event
        ROUTER.match(event.http_method, event.path)  # raises NotFound or MethodNotAllowed
        raise NotFound()  # unreachable unless Powertools and our templates disagree

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(Problem.of(error))
