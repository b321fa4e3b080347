"""What the stacks read from `functions/catalog.py`, checked up front so a bad entry fails the synth clearly.

Plain Python (no CDK), so the checks are cheap to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from functions.catalog import (
    AsyncInvokeConfig,
    FunctionDefinition,
    TableStreamSource,
    construct_id,
    function_name_variable,
)
from functions.catalog import url_variable as url_env_var
from shared.settings import RUNTIME_VARIABLES, SDK_ENDPOINT_VARIABLES

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_ROUTE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>/[A-Za-z0-9_./{}+-]*)$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_OUTPUT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# The stream's view types whose records carry the new image (what `TableStreamSource` filters on).
STREAM_VIEW_TYPES = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


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
    """The HTTP API's routes: every declared one, then an `ANY` route per path (`method_catch_alls`)."""
    declared = declared_routes(definitions)
    return declared + method_catch_alls(declared)


def declared_routes(definitions: Iterable[FunctionDefinition]) -> list[Route]:
    found: list[Route] = []
    for definition in definitions:
        found += [parse_route(r, definition.name, authorized=True) for r in definition.api_routes]
        found += [parse_route(r, definition.name, authorized=False) for r in definition.public_routes]
    return found


def method_catch_alls(declared: Iterable[Route]) -> list[Route]:
    """An `ANY` route per declared path, so that a method the path does not serve reaches a function,
    which answers 405 with `Allow` (API Gateway itself would answer 404: an HTTP API matches a route's
    method first). A route with a method wins over `ANY` on the same path. The catch-all goes to the
    function that reads the path (its GET), which knows every method on it; a path served by one
    function goes to that function. It asks for a token wherever a route of the path does."""
    by_path: dict[str, list[Route]] = {}
    for route in declared:
        by_path.setdefault(route.path, []).append(route)
    catch_alls = []
    for path, on_path in by_path.items():
        reader = next((route for route in on_path if route.method == "GET"), on_path[0])
        authorized = any(route.authorized for route in on_path)
        catch_alls.append(Route("ANY", path, reader.function, authorized))
    return catch_alls


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
        _in_range(definition.name, "timeout", definition.timeout_seconds, 1, 900, " seconds")
        _in_range(definition.name, "memory", definition.memory_mb, 128, 10240, " MB")
        if definition.stream_source is not None:
            check_stream_source(definition, definition.stream_source)
    check_async_invokes(items)
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CatalogError(f"duplicate function names: {sorted(duplicates)}")
    ids = [construct_id(n) for n in names]
    if len(set(ids)) != len(ids):
        raise CatalogError(f"function names collide once dashes are dropped: {names}")
    keys = [d.url_output_key for d in items if d.url_output_key]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"duplicate url_output_key among {keys}")
    table_stream_view_type(items)
    seen: dict[str, str] = {}
    for route in routes(items):
        if route.key in seen:
            raise CatalogError(f"route {route.key} claimed by {seen[route.key]} and {route.function}")
        seen[route.key] = route.function
    return items


def check_stream_source(definition: FunctionDefinition, source: TableStreamSource) -> None:
    """What Lambda accepts for a DynamoDB event source mapping, and what keeps a failing record: a bounded
    retry count (never -1, "until the record expires") and an age limit (`infra/time_budget.py` fits both)."""
    name = definition.name
    if not definition.uses_table:
        raise CatalogError(f"{name}: a stream source needs a settings model with the table (TableSettings)")
    if not source.item_type:
        raise CatalogError(f"{name}: a stream source needs the item type it is invoked for")
    _in_range(name, "stream batch_size", source.batch_size, 1, 10000)
    _in_range(name, "stream retry_attempts", source.retry_attempts, 0, 10000, " (a bounded count)")
    _in_range(name, "stream max_record_age_seconds", source.max_record_age_seconds, 60, 604800)
    if source.view_type not in STREAM_VIEW_TYPES:
        raise CatalogError(f"{name}: stream view_type must be one of {STREAM_VIEW_TYPES}: the filter reads NewImage")
    if source.starting_position not in STARTING_POSITIONS:
        raise CatalogError(f"{name}: stream starting_position must be one of {STARTING_POSITIONS}")
    _in_range(name, "dead_letter_retention_days", source.dead_letter_retention_days, 1, 14, " (SQS's limits)")


def async_invoke_config(
    definition: FunctionDefinition, definitions: Iterable[FunctionDefinition]
) -> AsyncInvokeConfig | None:
    """How the stack configures the function's asynchronous invocations: as declared; for a function invoked
    asynchronously (an `invokes` target, an on-failure function) that declares nothing, Lambda's retries with
    its own dead-letter queue, so no asynchronous invocation fails unseen; else None (nothing to configure)."""
    if definition.async_invoke is not None:
        return definition.async_invoke
    for other in definitions:
        named = other.async_invoke.on_failure_function if other.async_invoke is not None else None
        if definition.name in other.invokes or definition.name == named:
            return AsyncInvokeConfig()
    return None


def check_async_invokes(definitions: Iterable[FunctionDefinition]) -> None:
    """Each function's asynchronous invocation settings (`async_invoke_config`) within what Lambda accepts, with
    an event age that lets every attempt run (else the age limit would cut the retries short)."""
    items = {d.name: d for d in definitions}
    for definition in items.values():
        config = async_invoke_config(definition, items.values())
        if config is not None:
            check_async_invoke(definition, config, items)


def check_async_invoke(
    definition: FunctionDefinition, config: AsyncInvokeConfig, items: Mapping[str, FunctionDefinition]
) -> None:
    name = definition.name
    _in_range(name, "async retry_attempts", config.retry_attempts, 0, 2)
    _in_range(name, "async max_event_age_seconds", config.max_event_age_seconds, 60, 21600)
    _in_range(name, "async dead_letter_retention_days", config.dead_letter_retention_days, 1, 14, " (SQS's limits)")
    worst = config.worst_case_seconds(definition.timeout_seconds)
    if config.max_event_age_seconds < worst:
        raise CatalogError(
            f"{name}: async max_event_age_seconds {config.max_event_age_seconds} cuts its retries short: "
            f"{1 + config.retry_attempts} attempts of {definition.timeout_seconds} s and Lambda's delays take {worst} s"
        )
    target = config.on_failure_function
    if target is None:
        return
    if target == name:
        raise CatalogError(f"{name}: a function cannot be its own on-failure destination")
    if target not in items:
        raise CatalogError(f"{name}: on-failure function {target!r} is not in the catalog")
    if items[target].streaming:
        raise CatalogError(f"{name}: on-failure function {target} must be a buffered function (it gets a record)")


def _in_range(owner: str, what: str, value: int, low: int, high: int, unit: str = "") -> None:
    if not low <= value <= high:
        raise CatalogError(f"{owner}: {what} must be {low} to {high}{unit}")


def table_stream_view_type(definitions: Iterable[FunctionDefinition]) -> str | None:
    """The table's stream: the view type every stream source of the catalog reads, or None (no stream)."""
    wanted = {d.stream_source.view_type for d in definitions if d.stream_source is not None}
    if len(wanted) > 1:
        raise CatalogError(f"stream sources ask for different view types of the one table stream: {sorted(wanted)}")
    return next(iter(wanted), None)
