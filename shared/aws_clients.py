"""How long one AWS SDK call may take at worst, and the botocore configuration that keeps it so.

Every function's time budget is checked against these figures (every attempt timing out, every backoff at
its cap), so a stalled service ends an invocation with an answer, not with Lambda killing it mid-write.
botocore's standard retry mode waits `rand(0, 1) * min(scale * 2**i, 20)` seconds before retry `i + 1`,
with a scale of 1 s for throttling and less for other errors: the caps below assume throttling.
In `Config(retries=...)`, `max_attempts` counts retries; `total_max_attempts` counts requests: we set
the latter, so the figure here is the number of requests sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.concurrency import pool_size

_MAX_BACKOFF_SECONDS = 20.0


@dataclass(frozen=True)
class ClientLimits:
    connect_timeout: float
    read_timeout: float  # per socket read: for these small request/response calls, the whole answer
    attempts: int  # requests sent in all, the first included

    @property
    def worst_case_seconds(self) -> float:
        waits = sum(min(2.0**retry, _MAX_BACKOFF_SECONDS) for retry in range(self.attempts - 1))
        return self.attempts * (self.connect_timeout + self.read_timeout) + waits

    def botocore_config(self, **extra: Any) -> Any:
        """Also as many pooled connections as the turn pool has threads (botocore keeps 10): on Managed
        Instances 32 invocations share each client, and a pool too small drops a connection after each call
        beyond it, so the next call pays a new TCP and TLS handshake."""
        from botocore.config import Config  # botocore only where a client is made

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
            max_pool_connections=pool_size(),
            **extra,
        )


# Single-digit-millisecond services: a read that takes seconds is a stall, better retried than awaited.
DYNAMODB = ClientLimits(connect_timeout=1.0, read_timeout=1.5, attempts=3)
# The per-user rate limit's one conditional update (`shared.store.dynamodb.rate_limit`): a protective check
# that admits the request when the table cannot answer in time, so it gets one short try, not three long
# ones. One second at worst is what lets the REST API count it within API Gateway's 30 s.
RATE_LIMIT = ClientLimits(connect_timeout=0.5, read_timeout=0.5, attempts=1)
# `InvocationType=Event` answers 202 once the event is queued.
LAMBDA_ASYNC = ClientLimits(connect_timeout=1.0, read_timeout=3.0, attempts=3)
# Images of at most a few megabytes from the same Region.
S3 = ClientLimits(connect_timeout=1.0, read_timeout=3.0, attempts=3)
# The issuer's JWKS document (`shared.http.auth.fetch_jwks`): one GET, no retry.
JWKS = ClientLimits(connect_timeout=2.0, read_timeout=2.0, attempts=1)


_sessions = threading.Lock()


def new_session() -> Any:
    """A boto3 session of its own (a session is not safe to make clients from on several threads), on the
    process's one botocore data loader: the JSON models and endpoint rules a client is built from are read
    once per process, not once per session. That is most of a client's making: about 60 ms for a second
    DynamoDB resource on a session of its own, 11 ms on the shared loader."""
    import boto3  # the SDK only where a session is made: ports and flows import the limits above
    import botocore.session

    with _sessions:
        core = botocore.session.get_session()
        loader = _data_loader()
        core.register_component("data_loader", loader)
        session = boto3.session.Session(botocore_session=core)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))  # boto3 adds its data path per session
        return session


@cache
def _data_loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()
