"""A per-user request limit as a sliding window log: never more than `limit` requests in any `window`.

One item per user and budget holds the times of the last `limit` admitted requests, oldest first, in the
attributes `t0` ... `t{limit-1}`. A request is admitted when `t0`, the admission `limit` requests back,
has left the window; admitting it shifts the log by one (`t0 = t1, ..., t{limit-1} = now`). Condition and
shift are one conditional `UpdateItem`, so the hot path costs one round trip, concurrent requests are
serialized by DynamoDB on the item, and a refused request writes nothing. A refusal reads the item as it
was (`ReturnValuesOnConditionCheckFailure`) for an exact `Retry-After`: when `t0` leaves the window.

Unlike a counter per clock minute, nothing resets at a boundary, so there is no double burst across it;
unlike a token bucket, the bound holds for every window, not just on average. The item expires (TTL) a
window (and some slack) after its newest admission, when it no longer refuses anything.

The bound is as exact as the callers' clocks, whose times it keeps (functions' clocks agree to well under
a second). After the limit changes, at most the larger of the two passes until the old log has left the
window.

The update goes through a client of its own (`shared.aws_clients.RATE_LIMIT`: one try, half a second to
connect and to read), and a table that does not answer in time, throttles the item or fails on its side
**admits** the request (fail open), logged as a warning and counted (`RateLimitUnavailable`). The limit
protects the model budget from one user's excess; it is not what makes a request valid, so a stalled limit
check must neither fail the request nor spend the time it needs (coach-api has under 30 s for all of it).
A refusal by the table itself (no such table, access denied, a bad request) is a defect, not an outage,
and still fails loudly. Fail open costs little: the next request that reaches the table counts again, and
the stage's throttle and the functions' concurrency still bound the whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from shared.aws_clients import RATE_LIMIT
from shared.errors import RateLimited
from shared.observability import logger, observe
from shared.settings import RATE_LIMIT_MAX
from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, coach_table, conditional_write
from shared.store.ports import RequestLimiter

WINDOW_SECONDS = 60
# One slot per admitted request in one update expression; DynamoDB caps an expression at 4 KB and 300
# operators or functions: at 100 slots it is about 3 KB with 99 functions.
MAX_LIMIT = RATE_LIMIT_MAX
EXPIRY_SLACK_SECONDS = 60  # functions' clocks may disagree; the item outlives its usefulness by this much
REFUSED = "too many requests; try again shortly"
UNAVAILABLE_METRIC = "RateLimitUnavailable"
# DynamoDB's answers for a table that is there but cannot take the request now (HTTP 400, unlike 5xx).
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})

Unavailable = Callable[[str, Exception], None]
"""Told the budget's name and the error when the table did not answer; the request is admitted after it."""


def shift_expression(limit: int) -> str:
    """`SET t0 = if_not_exists(t1, :zero), ..., t{limit-1} = :now, expiresAt = :expires`.

    The right-hand sides read the item as it was before the update; a slot a new item lacks reads as
    epoch 0, long out of any window.
    """
    shifted = [f"t{i} = if_not_exists(t{i + 1}, :zero)" for i in range(limit - 1)]
    return "SET " + ", ".join([*shifted, f"t{limit - 1} = :now", "expiresAt = :expires"])


ADMIT_CONDITION = "attribute_not_exists(t0) OR t0 <= :cutoff"


def is_unavailable(error: Exception) -> bool:
    """The table did not answer (a timeout, a cut or refused connection), throttled, or failed on its side:
    an outage to ride out, unlike a refusal that names a defect (missing table, access denied, bad input)."""
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in THROTTLING_CODES or status >= 500
    return False


def admit_unchecked(budget: str, error: Exception) -> None:
    """Fail open, visibly: a warning with the cause, and one `RateLimitUnavailable` for the invocation."""
    logger.warning("rate limit unavailable; request admitted unchecked", extra={"budget": budget, "cause": repr(error)})
    observe(UNAVAILABLE_METRIC, 1)


class DynamoRateLimiter(TableAdapter, RequestLimiter):
    """One budget (`name`) per user: the turns and REST writes share one, REST reads have their own."""

    def __init__(
        self,
        limit: int,
        table: Any | None = None,
        clock: Callable[[], float] = time.time,
        *,
        name: str,
        window_seconds: int = WINDOW_SECONDS,
        table_name: str | None = None,
        on_unavailable: Unavailable = admit_unchecked,
    ) -> None:
        super().__init__(table, table_name=table_name)
        self._on_unavailable = on_unavailable
        if limit > MAX_LIMIT:
            raise ValueError(f"a sliding window log holds at most {MAX_LIMIT} requests, not {limit}")
        self.limit = limit
        self.name = name
        self.window_seconds = window_seconds
        self._clock = clock
        self._expression = shift_expression(limit) if limit > 0 else ""

    @property
    def table(self) -> Any:
        """The table handed in (tests), else the named table through the limit's own client."""
        return self._table or coach_table(self._table_name, RATE_LIMIT)

    def hit(self, user_id: str) -> None:
        if self.limit <= 0:
            return
        try:
            self._admit(user_id)
        except (ClientError, BotoConnectionError, HTTPClientError) as exc:
            if not is_unavailable(exc):
                raise
            self._on_unavailable(self.name, exc)

    def _admit(self, user_id: str) -> None:
        """One conditional update: the request is admitted, or `RateLimited` with the seconds to wait."""
        now = self._clock()
        try:
            with conditional_write():
                self.table.update_item(
                    Key={"pk": keys.rate_limit_pk(user_id), "sk": f"LIMIT#{self.name}"},
                    UpdateExpression=self._expression,
                    ConditionExpression=ADMIT_CONDITION,
                    ExpressionAttributeValues={
                        **({":zero": 0} if self.limit > 1 else {}),  # DynamoDB refuses a value no expression uses
                        ":now": _millis(now),
                        ":cutoff": _millis(now - self.window_seconds),
                        ":expires": math.ceil(now) + self.window_seconds + EXPIRY_SLACK_SECONDS,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailed as refused:
            oldest = _oldest_admission(refused.item)
            wait = self.window_seconds if oldest is None else oldest + self.window_seconds - now
            raise RateLimited(math.ceil(wait), REFUSED) from None


def _millis(epoch_seconds: float) -> Decimal:
    return Decimal(f"{epoch_seconds:.3f}")


def _oldest_admission(item: dict[str, Any] | None) -> float | None:
    """`t0` of the item as the refused update found it (the low-level attribute-value form)."""
    slot = (item or {}).get("t0", {})
    return float(slot["N"]) if "N" in slot else None
