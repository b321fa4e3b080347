"""The coach API's resolver: Powertools' HTTP API (payload 2.0) resolver with our routes and errors."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from shared.api import coaches, config, creator_sessions
from shared.api.errors import register_error_handlers
from shared.api.validation import read_bodies_as_json


def create_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)  # OpenAPI from the declared parameters
    read_bodies_as_json(app)
    app.include_router(coaches.router)
    app.include_router(creator_sessions.router)
    app.include_router(config.router)
    register_error_handlers(app)
    return app


app = create_app()
