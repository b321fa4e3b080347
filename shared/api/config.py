"""`GET /config`: what a frontend needs to start, public (no authorizer in front of it).

With a token, the answer adds `useStreaming` for that user. API Gateway did not check the token
here, so this endpoint verifies it itself; a missing or invalid token is simply an anonymous call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from shared import flags
from shared.api.documented import operation
from shared.api.paths import GET_CONFIG, NoParams
from shared.api.routing import current_event, endpoint
from shared.api.schemas import FrontendConfig
from shared.api.services import Services
from shared.errors import NotAuthenticated
from shared.http.auth import authenticate
from shared.observability import logger
from shared.settings import EndpointSettings, settings

router = Router()


@endpoint(
    router, GET_CONFIG, public=True, doc=operation("What a frontend needs to start", FrontendConfig, authorized=False)
)
def get_config(_: NoParams, __: Services) -> dict[str, Any]:
    values = flags.current_flags()  # one snapshot: the features and useStreaming always agree
    config: dict[str, Any] = {
        "features": {
            "streamingEnabled": values.streaming_enabled,
            "streamingPercentage": values.streaming_percentage,
        },
        "endpoints": _endpoints(settings(EndpointSettings)),
    }
    user_id = _optional_user_id(current_event(router).headers)
    if user_id is not None:
        config["useStreaming"] = flags.use_streaming(user_id, values)
    return config


def _endpoints(found: EndpointSettings) -> dict[str, str | None]:
    return {
        "coachConversationStream": found.coach_conversation_stream_url or None,
        "coachCreatorStream": found.coach_creator_stream_url or None,
        "api": found.api_url or None,
    }


def _optional_user_id(headers: dict[str, str]) -> str | None:
    if not any(name.lower() == "authorization" for name in headers):
        return None
    try:
        return authenticate(headers).user_id
    except NotAuthenticated:
        return None  # already logged by the verifier
    except ValueError:
        logger.exception("token verification is misconfigured; answering /config anonymously")
        return None
