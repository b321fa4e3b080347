"""Every failure as the contract's `{"error": {"code", "message"}}` with its status (CONTRACT.md §2).

The status and code come from the one error table (`shared.http.errors`); a request no endpoint
took is a 404, or a 405 with an `Allow` header when the path is known; anything else is a 500 whose
message says nothing of the internals (the exception goes to the log only).

Powertools validates a request against its declared parameters before the endpoint runs, and would
answer 422 in its own shape. Instead, a request it refused is handed to the endpoint's own checks,
which run in the contract's order (path, caller, size, body) and answer in the contract's words: a
refused body is a 400, or whatever came first (a 404, a 403, a 413). Every body is read as JSON,
whatever its `Content-Type` (`shared.api.validation`).
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from shared.api.paths import ROUTER
from shared.api.routing import SERVED
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

    @app.exception_handler(RequestValidationError)
    def refused_by_schema(error: RequestValidationError) -> Response:
        event = app.current_event
        try:
            found = ROUTER.match(event.http_method, event.path)  # 404 or 405 first, as for any request
            answer = SERVED[(found.route.method, found.route.template)]()  # raises the contract's refusal
        except CoachError as refusal:
            return refused(refusal)
        except Exception as failure:
            return unexpected(failure)
        # our rules accept a little more than the schema says (a blank body is an empty object)
        logger.info("accepted a body Powertools refused", extra={"problems": [e["type"] for e in error.errors()]})
        if isinstance(answer, Response):
            return answer
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer)
