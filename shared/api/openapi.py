"""The OpenAPI 3.1 document of the whole contract, generated from the code: `python -m shared.api.openapi`.

Three sources, one document:
- the coach API's own resolver (`shared.api.app`), whose routes declare their parameters, bodies and
  answers (`shared.api.documented`);
- the operations other functions serve: the two turn fallbacks behind the same HTTP API, and the two
  streams, each on its own Function URL (a path-level `servers` entry), read from `functions.catalog`;
- the stream's events (`shared.api.schemas.STREAM_EVENTS`), as JSON Schemas of their pydantic models.

Only tools import this module (the local API Gateway, tests, the command line), never a handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from shared.api.documented import BEARER, operation
from shared.api.parameters import powertools_signature
from shared.api.paths import powertools_rule
from shared.api.schemas import STREAM_EVENTS, ConversationReply, CreatorReply, ErrorBody, GatewayMessage
from shared.http.body import StreamRequestBody
from shared.http.routes import CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE, Route

TITLE = "coach-stream"
VERSION = "1"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Flow:
    """One chat flow as the contract shows it: its stream, its fallback, its answers."""

    name: str
    stream_function: str
    stream_route: Route[Any]
    fallback_function: str
    reply: type[BaseModel]

    @property
    def events_schema(self) -> str:
        return f"{self.name.title()}StreamEvent"


FLOWS = (
    Flow(
        "conversation",
        "stream-coach-conversation",
        CONVERSATION_STREAM_ROUTE,
        "send-coach-conversation-message",
        ConversationReply,
    ),
    Flow(
        "creator",
        "stream-coach-creator-session",
        CREATOR_SESSION_STREAM_ROUTE,
        "update-coach-creator-session",
        CreatorReply,
    ),
)


def contract_document(outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document; `outputs` (the stack's outputs, `.local/outputs.json` or a deployed stack's) give
    the servers: `apiUrl` and each stream's Function URL. Without them the servers are relative."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from shared.api.app import app

    outputs = outputs or {}
    rest_url = str(outputs.get("apiUrl") or "").rstrip("/") or "/"  # a Function URL output ends in "/"
    schemes = {BEARER: HTTPBearer(bearerFormat="JWT", description="a Cognito ID token of the app client")}
    settings: dict[str, Any] = {
        "title": TITLE,
        "version": VERSION,
        "description": "CONTRACT.md as OpenAPI: the HTTP API, the two streams (Function URLs) and their events.",
        "servers": [{"url": rest_url, "description": "API Gateway HTTP API (JWT authorizer)"}],
        "security_schemes": schemes,
    }
    document = json.loads(app.get_openapi_json_schema(**settings))
    other = json.loads(_other_functions().get_openapi_json_schema(**settings))
    for path, item in other["paths"].items():
        document["paths"].setdefault(path, {}).update(item)
    _merge_components(document, other["components"]["schemas"])
    _merge_components(document, _event_schemas())
    for flow in FLOWS:
        url = str(outputs.get(_url_output_key(flow.stream_function)) or "").rstrip("/") or f"/{flow.stream_function}"
        stream_path = document["paths"][flow.stream_route.template]
        stream_path["servers"] = [{"url": url, "description": f"{flow.stream_function} Function URL"}]
    _drop_powertools_422(document)
    return document


def _other_functions() -> Any:
    """A resolver that only describes: the routes of the turn functions, none of which it ever serves."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from functions.catalog import FUNCTIONS

    by_name = {definition.name: definition for definition in FUNCTIONS}
    resolver = APIGatewayHttpResolver(enable_validation=True)
    for flow in FLOWS:
        method, template = by_name[flow.fallback_function].api_routes[0].split(" ", 1)
        fallback = Route(method, template, flow.stream_route.params_model)
        events = _event_stream(flow)
        summary = f"The {flow.name} turn without streaming ({flow.fallback_function})"
        doc = operation(summary, flow.reply, body=True, turn=True, event_stream=events)
        _describe(resolver, fallback, doc, flow.fallback_function, stream_query=True)
        summary = f"The {flow.name} turn as Server-Sent Events ({flow.stream_function}, its own Function URL)"
        doc = operation(summary, None, gateway=False, body=True, turn=True, event_stream=events)
        _describe(resolver, flow.stream_route, doc, flow.stream_function, stream_query=False)
    return resolver


def _describe(resolver: Any, route: Route[Any], doc: dict[str, Any], function: str, *, stream_query: bool) -> None:
    """`route` as `function` serves it; its operationId is the function's name (`stream_coach_conversation`)."""

    def served_elsewhere(**_: Any) -> None:
        raise AssertionError("documentation only")

    served_elsewhere.__signature__ = powertools_signature(  # type: ignore[attr-defined]
        route, StreamRequestBody, body_required=True, stream_query=stream_query
    )
    operation_id = function.replace("-", "_")
    resolver.route(powertools_rule(route.template), route.method, operation_id=operation_id, **doc)(served_elsewhere)


def _event_stream(flow: Flow) -> dict[str, Any]:
    """One event of the stream, as OpenAPI 3.2 reads `itemSchema` and tools read `schema` before 3.2: the
    parsed SSE event, whose `data` is the JSON of one contract event."""
    data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": REF.format(model=flow.events_schema)},
    }
    properties = {
        "data": data,
        "id": {"type": "string", "description": "optional"},
        "event": {"const": "message", "description": "never sent, so a parser's default"},
    }
    return {"schema": {"type": "object", "required": ["data"], "properties": properties}}


def _event_schemas() -> dict[str, Any]:
    """Every event model, the error shapes, and one discriminated union of events per flow."""
    models = {model for events in STREAM_EVENTS.values() for model in events} | {ErrorBody, GatewayMessage}
    _, top = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)], ref_template=REF
    )
    schemas: dict[str, Any] = {name: _constants_required(schema) for name, schema in top.get("$defs", {}).items()}
    for flow in FLOWS:
        union = Annotated[Union[tuple(STREAM_EVENTS[flow.name])], Field(discriminator="type")]  # noqa: UP007
        found = TypeAdapter(union).json_schema(ref_template=REF)
        found.pop("$defs", None)
        schemas[flow.events_schema] = {**found, "description": f"A `data:` line of the {flow.name} stream"}
    return schemas


def _constants_required(schema: dict[str, Any]) -> dict[str, Any]:
    """An event's constant fields (`type`, `status`) have defaults in the model, yet every event carries them."""
    constants = [name for name, field in schema.get("properties", {}).items() if "const" in field]
    required = list(schema.get("required", []))
    missing = [name for name in constants if name not in required]
    return {**schema, "required": required + missing} if missing else schema


def _merge_components(document: dict[str, Any], schemas: Mapping[str, Any]) -> None:
    """Adds `schemas`; a name both sides define must be the same model, or the document would lie."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        if name in components and _comparable(components[name]) != _comparable(schema):
            raise ValueError(f"two different schemas named {name}")
        components.setdefault(name, schema)


def _comparable(schema: Any) -> Any:
    """The same model, whether or not its constant fields were marked required (Powertools drops null defaults)."""
    if isinstance(schema, dict):
        return {key: _comparable(value) for key, value in schema.items() if key not in ("required", "default")}
    if isinstance(schema, list):
        return [_comparable(value) for value in schema]
    return schema


def _drop_powertools_422(document: dict[str, Any]) -> None:
    """Powertools documents its own 422; our resolver answers a refused request with the contract's 400."""
    for item in document["paths"].values():
        for method, op in item.items():
            if isinstance(op, dict) and method != "servers":
                op.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)


def _url_output_key(function_name: str) -> str:
    from functions.catalog import FUNCTIONS

    return next(d.url_output_key or "" for d in FUNCTIONS if d.name == function_name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.api.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, help="a stack's outputs JSON (.local/outputs.json, or a deployed one)")
    args = parser.parse_args(argv)
    outputs = json.loads(args.outputs.read_text()) if args.outputs else None
    json.dump(contract_document(outputs), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
