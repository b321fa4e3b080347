"""A per-user request limit: one DynamoDB counter per user and minute, expired by TTL.

The increment is conditional, so a request over the limit changes nothing and gets 429 with the
seconds until the window turns.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from shared.errors import RateLimited
from shared.settings import RateLimitSettings, settings
from shared.store import keys
from shared.store.dynamo import coach_table

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(self, limit: int | None = None, table: Any | None = None, clock: Any = time.time) -> None:
        self.limit = limit if limit is not None else settings(RateLimitSettings).rate_limit_per_minute
        self._table = table
        self._clock = clock

    def hit(self, user_id: str) -> None:
        """Count one request; raise `RateLimited` if the user is over the limit."""
        if self.limit <= 0:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        table = self._table or coach_table()
        try:
            table.update_item(
                Key={"pk": keys.rate_limit_pk(user_id), "sk": f"WINDOW#{window}"},
                UpdateExpression="ADD hits :one SET expiresAt = :expires",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeValues={
                    ":one": 1,
                    ":limit": self.limit,
                    ":expires": (window + 2) * WINDOW_SECONDS,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            retry_after = (window + 1) * WINDOW_SECONDS - now
            raise RateLimited(int(retry_after) + 1, "too many requests; try again shortly") from exc
