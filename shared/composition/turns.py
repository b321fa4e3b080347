"""Turn handlers: the streaming function and its fallback, both made from one flow's `TurnEntry`.

Every turn opens the same way, in the contract's order: route (404/405), token (401), path user
(403), body (400/413/403), rate limit (429), then the flow's own opener (its whole pre-stream phase:
loads, 404s, 409s, the first conditional write). The rate limit's counter is updated while the
flow reads what it needs; its verdict is asked for before any 404 and before the first write. Only
after that does a response start, so every refusal still gets its status and changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

from shared.aws_clients import RATE_LIMIT
from shared.concurrency import WORKERS
from shared.errors import StreamingDisabled
from shared.events import TurnEvent
from shared.fallback import collect_complete
from shared.flags import prepare_flags, streaming_enabled
from shared.http.auth import default_verifier
from shared.http.event import HttpRequest
from shared.http.routes import Router
from shared.http.stream_request import StreamRequest, open_stream_request
from shared.http.streaming import JsonResponse, StreamingResponse, streaming_handler
from shared.observability import lambda_entry, log_keys, logger
from shared.settings import StreamSettings, TurnSettings
from shared.store.dynamodb.rate_limit import DynamoRateLimiter
from shared.store.dynamodb.table import coach_table
from shared.store.ports import WRITES_BUDGET, RequestLimiter


class Turn(Protocol):
    def events(self) -> Iterator[TurnEvent]: ...


Ask = TypeVar("Ask")
T_co = TypeVar("T_co", bound=Turn, covariant=True)
LambdaHandler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class TurnEntry(Generic[Ask, T_co]):
    """How one flow is entered from HTTP: its view of the request, its opener, and the shared limits."""

    read: Callable[[StreamRequest[Any]], Ask]
    # (what was asked, deadline, request id, the rate limit's verdict) -> the opened turn
    open: Callable[[Ask, float, str, Callable[[], None]], T_co]
    limiter: RequestLimiter
    stream: StreamSettings
    # Does at init what every first turn needs (the table's clients, the flags read), leaving no connection open.
    prepare: Callable[[], None] = lambda: None


def turn_entry(
    settings: TurnSettings,
    read: Callable[[StreamRequest[Any]], Ask],
    open_flow: Callable[[Ask, float, str, Callable[[], None]], T_co],
) -> TurnEntry[Ask, T_co]:
    """A flow's entry with the limits every turn shares: the per-user writes budget in the flow's table, which
    the fallbacks and the REST writes share too (one model-spending budget however the turn arrives). Checked
    as the REST API checks it: one short try on the limit's own client, admitting the turn when the table
    cannot answer (`shared.store.dynamodb.rate_limit`), so a stalled limit never fails or delays a turn."""
    return TurnEntry(
        read=read,
        open=open_flow,
        limiter=DynamoRateLimiter(settings.rate_limit_per_minute, name=WRITES_BUDGET, table_name=settings.table_name),
        stream=settings,
        prepare=lambda: prepare_first_turn(settings.table_name),
    )


def prepare_first_turn(table_name: str) -> None:
    """The table through the repositories' client and the limit's, the flags read and the issuer's signing
    keys fetched: what a turn would otherwise do in its first request (each client reads its service's
    models, about 60 ms for the first; the flags are two AppConfig calls; the keys one HTTPS GET to the
    issuer). The two reads run on threads of their own, so that their waits overlap the clients' making,
    which is CPU; both threads end before init does.

    Only a head start: what cannot be made yet (no Region in the environment, say) is made by the first
    request, which then answers with the error, instead of failing the init of every environment."""
    reads = [
        threading.Thread(target=_prepare, args=(read,), name=f"{name}-at-init")
        for name, read in (("flags", prepare_flags), ("keys", lambda: default_verifier().keys.warm()))
    ]
    for read in reads:
        read.start()
    try:
        _prepare(lambda: (coach_table(table_name), coach_table(table_name, RATE_LIMIT)))
    finally:
        for read in reads:
            read.join()


def _prepare(make: Callable[[], Any]) -> None:
    try:
        make()
    except Exception as exc:
        logger.warning("clients not prepared at init; the first request makes them: %s", exc)


CLOCK_SLACK_SECONDS = 5.0  # functions' clocks may disagree this much about when a claim lapses


def claim_margin_seconds(stream: StreamSettings) -> float:
    """How long after its deadline a turn's claim (on a message, or on an interview) must still hold:
    the time the turn may spend storing its result after the deadline, plus slack for clocks."""
    return stream.stream_deadline_margin_seconds + CLOCK_SLACK_SECONDS


def stream_deadline(context: Any, stream: StreamSettings) -> float:
    """The turn's own time budget, always ending a margin before Lambda would stop the function."""
    remaining = context.get_remaining_time_in_millis() / 1000 - stream.stream_deadline_margin_seconds
    return time.monotonic() + max(1.0, min(stream.stream_time_budget_seconds, remaining))


def open_turn(entry: TurnEntry[Any, Turn], request: HttpRequest, context: Any, router: Router) -> Turn:
    stream_request = open_stream_request(request, router)
    user_id = stream_request.user.user_id
    log_keys(user_id=user_id)
    verdict = WORKERS.submit(entry.limiter.hit, user_id)  # counted while the flow reads what it needs
    deadline = stream_deadline(context, entry.stream)
    return entry.open(entry.read(stream_request), deadline, context.aws_request_id, verdict.result)


def streaming_turn_handler(router: Router, compose: Callable[[], TurnEntry[Any, Turn]]) -> LambdaHandler:
    """The Function URL's handler: SSE while the streaming flag is on, 503 `STREAMING_DISABLED` when off."""
    entry = cache(compose)

    @lambda_entry
    @streaming_handler
    def handler(request: HttpRequest, context: Any) -> StreamingResponse:
        if not streaming_enabled():
            raise StreamingDisabled()
        return StreamingResponse(open_turn(entry(), request, context, router).events())

    def prepare() -> None:
        entry().prepare()

    handler.prepare_workers = prepare  # type: ignore[attr-defined]  # at init: built once, shared by all workers
    return handler


def fallback_turn_handler(
    router: Router, compose: Callable[[], TurnEntry[Any, Turn]], result_fields: tuple[str, ...]
) -> LambdaHandler:
    """The API Gateway fallback: the `complete` event's `result_fields` as JSON, or with `?stream=true`
    the same events buffered into one `text/event-stream` body."""
    entry = cache(compose)

    @lambda_entry
    @streaming_handler
    def handler(request: HttpRequest, context: Any) -> StreamingResponse | JsonResponse:
        turn = open_turn(entry(), request, context, router)
        if request.query.get("stream") == "true":
            return StreamingResponse(turn.events())
        return JsonResponse(collect_complete(turn.events(), result_fields))

    return handler
