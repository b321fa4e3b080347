"""The REST API's composition root: the repositories its endpoints use, named from its settings."""

from __future__ import annotations

from shared.api.services import Services
from shared.settings import CoachApiSettings
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository


def coach_api_services(settings: CoachApiSettings) -> Services:
    """Cheap to build at import: each repository opens the table on its first call."""
    return Services(
        coaches=DynamoCoachRepository(table_name=settings.table_name),
        conversations=DynamoConversationRepository(table_name=settings.table_name),
        sessions=DynamoCreatorSessionRepository(table_name=settings.table_name),
    )
