"""The REST API's composition root: the repositories its endpoints use, and the per-user limits, from its settings."""

from __future__ import annotations

from shared.api.services import Services
from shared.settings import CoachApiSettings
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.dynamodb.rate_limit import DynamoRateLimiter
from shared.store.ports import READS_BUDGET, WRITES_BUDGET, RequestLimits


def coach_api_services(settings: CoachApiSettings) -> Services:
    """Cheap to build at import: each repository opens the table on its first call.

    Every authorized route spends a per-user budget first (`coach_api_limits`). That is one more DynamoDB
    request before the endpoint's own two, made through the limit's short client (one try of at most a
    second, admitted unchecked when the table does not answer), which is what keeps coach-api's worst case
    (`infra/time_budget.py`) within the HTTP API's 30 s.
    """
    return Services(
        coaches=DynamoCoachRepository(table_name=settings.table_name),
        conversations=DynamoConversationRepository(table_name=settings.table_name),
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
        limits=coach_api_limits(settings),
    )


def coach_api_limits(settings: CoachApiSettings) -> RequestLimits:
    """Writes spend the turns' own budget (`shared.composition.turns`: the same item, the same limit); reads
    have theirs."""
    table = settings.table_name
    return RequestLimits(
        writes=DynamoRateLimiter(settings.rate_limit_per_minute, name=WRITES_BUDGET, table_name=table),
        reads=DynamoRateLimiter(settings.rate_limit_reads_per_minute, name=READS_BUDGET, table_name=table),
    )
