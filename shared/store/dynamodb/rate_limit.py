"""A per-user request limit: one counter item per user and minute, expired by TTL.

The increment is conditional, so a request over the limit changes nothing and gets `RateLimited`
with the seconds until the window turns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.errors import RateLimited
from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, conditional_write
from shared.store.ports import RequestLimiter

WINDOW_SECONDS = 60


class DynamoRateLimiter(TableAdapter, RequestLimiter):
    def __init__(
        self,
        limit: int,
        table: Any | None = None,
        clock: Callable[[], float] = time.time,
        *,
        table_name: str | None = None,
    ) -> None:
        super().__init__(table, table_name=table_name)
        self.limit = limit
        self._clock = clock

    def hit(self, user_id: str) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        try:
            with conditional_write():
                self.table.update_item(
                    Key={"pk": keys.rate_limit_pk(user_id), "sk": f"WINDOW#{window}"},
                    UpdateExpression="ADD hits :one SET expiresAt = :expires",
                    ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                    ExpressionAttributeValues={
                        ":one": 1,
                        ":limit": self.limit,
                        ":expires": (window + 2) * WINDOW_SECONDS,
                    },
                )
        except ConditionFailed:
            retry_after = (window + 1) * WINDOW_SECONDS - now
            raise RateLimited(int(retry_after) + 1, "too many requests; try again shortly") from None
