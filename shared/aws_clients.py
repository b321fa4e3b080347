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


# Every AWS service the functions call; clients are made only by `make_client` and `make_resource`. A
# function's asset carries the SDK's models of these services alone (`infra.bundling.prune_sdk_models`), so
# a client of any other service would fail in AWS only: both refuse it here, locally and in tests alike.
SDK_SERVICES = frozenset({"appconfigdata", "bedrock-runtime", "dynamodb", "lambda", "s3"})

_making = threading.Lock()


class UnlistedService(ValueError):
    """A client for a service missing from `SDK_SERVICES`, whose models the deployed asset does not carry."""


def make_client(service: str, config: Any) -> Any:
    """A botocore client for `service`, made on the process's one session (see `_session`)."""
    _check_listed(service)
    with _making:
        return _session().client(service, config=config)


def make_resource(service: str, config: Any) -> Any:
    """A boto3 resource for `service`, made on the process's one session (see `_session`)."""
    _check_listed(service)
    with _making:
        return _session().resource(service, config=config)


def _check_listed(service: str) -> None:
    if service not in SDK_SERVICES:
        raise UnlistedService(
            f"no client for '{service}': add it to SDK_SERVICES, whose models alone the deployed asset carries"
        )


@cache
def _session() -> Any:
    """The process's one boto3 session. A session is not safe to make clients from on several threads at
    once, so clients are made from it under `_making`, one at a time (their making is CPU work, which the
    interpreter runs one thread at a time anyway); the clients themselves are safe to share. One session,
    not one a client: a session registers botocore's built-in handlers when made (about 12 ms), and its
    data loader reads the JSON models and endpoint rules a client is built from once for all the clients.
    Call only under `_making`."""
    import boto3  # the SDK only where a client is made: ports and flows import the limits above

    return boto3.session.Session()
