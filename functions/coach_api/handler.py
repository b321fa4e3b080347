"""coach-api: the non-streaming REST routes of CONTRACT.md section 3 behind API Gateway's HTTP API.

Coaches, conversations, coach creator sessions and `/config`. Thin on purpose: the routes live in
`shared.api`; this file builds the repositories once per container from its composition root and
hands each event to the resolver.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from functions.catalog import COACH_API
from shared.api.app import app
from shared.api.services import CONTEXT_KEY
from shared.composition.coach_api import coach_api_services
from shared.observability import lambda_entry
from shared.settings import load_settings

SETTINGS = load_settings(COACH_API.settings)
"""Validated at import, so at cold start: a missing or invalid variable fails the init, naming it."""

SERVICES = coach_api_services(SETTINGS)
"""Once per container; the table itself is opened on first use."""


@partial(lambda_entry, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    app.append_context(**{CONTEXT_KEY: SERVICES})
    return app.resolve(event, context)
