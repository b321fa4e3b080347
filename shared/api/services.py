"""What the endpoints work with: the repositories (ports), handed in by the function per invocation.

The handler builds the DynamoDB adapters once per container and puts them into the resolver's
context (`app.append_context(services=...)`); tests can hand in any other implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.store.ports import CoachRepository, ConversationRepository, CreatorSessionRepository, RequestLimits

CONTEXT_KEY = "services"


@dataclass(frozen=True)
class Services:
    coaches: CoachRepository
    conversations: ConversationRepository
    sessions: CreatorSessionRepository
    limits: RequestLimits | None = None  # per-user budgets, checked after the caller (None: unlimited)
