"""From a declared `Route` to a Powertools endpoint: typed path parameters and the caller check.

API Gateway's JWT authorizer has already verified the token of an authorized route and passes its
claims (as strings) in `requestContext.authorizer.jwt.claims`. What is left to check here is that
the token's user is the `{userId}` of the path: no cross-user access, ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from shared.api.parameters import BODY, powertools_signature, read_body
from shared.api.paths import UserPath, powertools_rule
from shared.api.services import CONTEXT_KEY, Services
from shared.errors import Forbidden
from shared.http.auth import allowed_token_use, claimed_user_id
from shared.http.routes import PathParams, Route
from shared.observability import log_keys
from shared.settings import AuthSection, settings

P = TypeVar("P", bound=PathParams)
Endpoint = Callable[..., Any]
"""`func(params, services)`, or `func(params, services, body)` for a route declared with a body model."""

SERVED: dict[tuple[str, str], Callable[[], Any]] = {}
"""Each registered endpoint by (method, template), callable without Powertools' validated values: how a
request Powertools' validation refused is answered by the endpoint's own checks (`shared.api.errors`)."""


def current_event(router: Router) -> APIGatewayProxyEventV2:
    return cast(APIGatewayProxyEventV2, router.current_event)


def authorized_user_id(event: APIGatewayProxyEventV2) -> str:
    """The user of a token the authorizer verified, under the streams' own rules: the authorizer checks
    the signature, issuer, expiry and app client, but takes an access token as readily as an ID token,
    so the token's use and its user id claim are checked here (401 for either)."""
    section = settings(AuthSection)
    claims = event.request_context.authorizer.jwt_claim
    allowed_token_use(claims, frozenset(section.jwt_token_use))
    return claimed_user_id(claims, section.jwt_user_id_claim, section.jwt_allow_sub_fallback)


def require_caller(event: APIGatewayProxyEventV2, path_user_id: str) -> None:
    user_id = authorized_user_id(event)
    log_keys(user_id=user_id)
    if user_id != path_user_id:
        raise Forbidden("token user does not match the path")


def endpoint(
    router: Router,
    route: Route[P],
    *,
    public: bool = False,
    body: type[BaseModel] | None = None,
    doc: dict[str, Any] | None = None,
) -> Callable[[Endpoint], Endpoint]:
    """Registers `func(params, services)` for `route` on `router`, or `func(params, services, body)` with a
    `body` model; `doc` is what the OpenAPI document says of it (`shared.api.documented.operation`).

    The path is parsed by our own template, so ids are percent-decoded and validated exactly as in
    `shared.http.routes` (an impossible id is a 404). Unless `public`, the caller must be the path's
    user (403 otherwise), checked before anything is read, and then the user's budget for the method is
    spent (429 when it is spent already).
    """

    if not public and not issubclass(route.params_model, UserPath):
        raise TypeError(f"{route.template} has no userId to authorize")

    def register(func: Endpoint) -> Endpoint:
        def call(**validated: Any) -> Any:
            event = current_event(router)
            params = route.parse(event.path)
            services: Services = router.context[CONTEXT_KEY]
            if not public:
                user_id = cast(UserPath, params).user_id
                require_caller(event, user_id)
                if services.limits is not None:  # 429 before anything is read or written
                    services.limits.for_method(route.method).hit(user_id)
            if body is not None:
                return func(params, services, read_body(body, event, validated.get(BODY)))
            return func(params, services)

        call.__name__ = func.__name__
        call.__signature__ = powertools_signature(route, body)  # type: ignore[attr-defined]
        described = {"operation_id": func.__name__, **(doc or {})}
        router.route(powertools_rule(route.template), route.method, **described)(call)
        SERVED[(route.method, route.template)] = call
        return func

    return register
