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

    The per-user budgets (`coach_api_limits`) are not handed in yet: each is one more DynamoDB request
    before the endpoint's own (at most two), and coach-api's worst case (`infra/time_budget.py`) has room
    for two within the HTTP API's 30 s. Without them `Services.limits` is None and nothing is counted.
    """
    return Services(
        coaches=DynamoCoachRepository(table_name=settings.table_name),
        conversations=DynamoConversationRepository(table_name=settings.table_name),
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
    )


def coach_api_limits(settings: CoachApiSettings) -> RequestLimits:
    """Writes spend the turns' own budget (`shared.composition.turns`: the same item, the same limit); reads
    have theirs."""
    table = settings.table_name
    return RequestLimits(
        writes=DynamoRateLimiter(settings.rate_limit_per_minute, name=WRITES_BUDGET, table_name=table),
        reads=DynamoRateLimiter(settings.rate_limit_reads_per_minute, name=READS_BUDGET, table_name=table),
    )
