"""What the stacks read from `functions/catalog.py`, checked up front so a bad entry fails the synth clearly.

Plain Python (no CDK), so the checks are cheap to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from functions.catalog import FunctionDefinition, construct_id, function_name_variable
from functions.catalog import url_variable as url_env_var
from shared.settings import RUNTIME_VARIABLES, SDK_ENDPOINT_VARIABLES

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_ROUTE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>/[A-Za-z0-9_./{}+-]*)$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_OUTPUT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # catalog name
    authorized: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def parse_route(text: str, function: str, *, authorized: bool) -> Route:
    match = _ROUTE.match(text.strip())
    if match is None or match["method"] not in HTTP_METHODS:
        raise CatalogError(f"{function}: route {text!r} is not 'METHOD /path' with one of {HTTP_METHODS}")
    return Route(match["method"], match["path"], function, authorized)


__all__ = ["construct_id", "url_env_var"]


def target_env_var(name: str) -> str:
    """`post-turn-worker` -> `POST_TURN_WORKER_FUNCTION_NAME`: the catalog's own rule, so caller and
    callee agree on the variable that carries an async target's deployed name."""
    return function_name_variable(name)


def routes(definitions: Iterable[FunctionDefinition]) -> list[Route]:
    found: list[Route] = []
    for definition in definitions:
        found += [parse_route(r, definition.name, authorized=True) for r in definition.api_routes]
        found += [parse_route(r, definition.name, authorized=False) for r in definition.public_routes]
    return found


def rest_stream_routes(definitions: Iterable[FunctionDefinition], mapping: Mapping[str, str]) -> list[Route]:
    """The REST streaming API's routes: `mapping` (catalog name -> "METHOD /path") checked against the catalog.

    Every streaming function with a Function URL must have exactly one route, and every entry must name
    such a function: a streaming function added to the catalog fails the synth here until it is mapped
    (or `restStreaming` is off), rather than silently missing from the REST API.
    """
    items = list(definitions)
    streaming = {d.name for d in items if d.streaming and d.url_output_key}
    for name in mapping:
        if name not in streaming:
            raise CatalogError(f"REST streaming route for {name!r}: not a streaming function with a url_output_key")
    unmapped = sorted(streaming - set(mapping))
    if unmapped:
        raise CatalogError(
            f"streaming functions without a REST streaming route: {unmapped}; add them to "
            "infra/rest_streaming.py REST_STREAM_ROUTES, or synth with restStreaming=false"
        )
    found = [parse_route(mapping[d.name], d.name, authorized=True) for d in items if d.name in streaming]
    keys = [route.key for route in found]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"two streaming functions share a REST route: {keys}")
    return found


def check_environment(definition: FunctionDefinition, environment: Mapping[str, str]) -> None:
    """The stack sets what the function's settings model reads, and nothing it does not read.

    A required variable the stack does not set, or a variable no model reads (a renamed setting, an async
    target the code would never find), fails the synth. The stream URLs, added once the URLs exist, are
    optional in every model.
    """
    wanted = definition.settings.variables()
    model = definition.settings.__name__
    unread = sorted(set(environment) - set(wanted) - RUNTIME_VARIABLES - set(SDK_ENDPOINT_VARIABLES))
    if unread:
        raise CatalogError(f"{definition.name}: {model} does not read {unread}")
    missing = sorted(name for name, required in wanted.items() if required and name not in environment)
    if missing:
        raise CatalogError(f"{definition.name}: {model} requires {missing}, which the stack does not set")
    for target in definition.invokes:
        if function_name_variable(target) not in wanted:
            raise CatalogError(
                f"{definition.name} invokes {target}, but {model} has no {function_name_variable(target)}"
            )


def check(definitions: Iterable[FunctionDefinition]) -> list[FunctionDefinition]:
    """Every rule the stacks rely on; returns the definitions as a list."""
    items = list(definitions)
    names = [d.name for d in items]
    for definition in items:
        if not _NAME.match(definition.name):
            raise CatalogError(f"function name {definition.name!r}: lower-case letters, digits, dashes")
        if not definition.handler:
            raise CatalogError(f"{definition.name}: no handler")
        if definition.url_output_key is not None:
            if not definition.streaming:
                raise CatalogError(f"{definition.name}: url_output_key needs a streaming function (a URL)")
            if not _OUTPUT_KEY.match(definition.url_output_key):
                raise CatalogError(f"{definition.name}: url_output_key must be alphanumeric")
        for target in definition.invokes:
            if target not in names:
                raise CatalogError(f"{definition.name} invokes unknown function {target!r}")
        if not 1 <= definition.timeout_seconds <= 900:
            raise CatalogError(f"{definition.name}: timeout must be 1 to 900 seconds")
        if not 128 <= definition.memory_mb <= 10240:
            raise CatalogError(f"{definition.name}: memory must be 128 to 10240 MB")
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CatalogError(f"duplicate function names: {sorted(duplicates)}")
    ids = [construct_id(n) for n in names]
    if len(set(ids)) != len(ids):
        raise CatalogError(f"function names collide once dashes are dropped: {names}")
    keys = [d.url_output_key for d in items if d.url_output_key]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"duplicate url_output_key among {keys}")
    seen: dict[str, str] = {}
    for route in routes(items):
        if route.key in seen:
            raise CatalogError(f"route {route.key} claimed by {seen[route.key]} and {route.function}")
        seen[route.key] = route.function
    return items
