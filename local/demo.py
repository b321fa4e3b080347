"""The demo user's coach and conversation, seeded at every `make dev` so a newcomer can chat at once."""

from __future__ import annotations

from typing import Any

from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.records import Coach

DEMO_USER_ID = "demo-user"
DEMO_COACH_ID = "demo-coach"

DEMO_COACH = Coach(
    user_id=DEMO_USER_ID,
    coach_id=DEMO_COACH_ID,
    name="Coach Riley",
    personality="Upbeat, direct and encouraging; celebrates consistency over intensity.",
    methodology="Conjugate-inspired strength training with simple progressive overload for beginners.",
    program_focus="Getting stronger in the squat, bench press and deadlift, three days a week.",
    safety_notes="Mild left-knee discomfort on deep squats: prefer box squats and controlled depth.",
    coaching_style="Short, specific answers with one clear next step.",
    created_at="2026-01-01T00:00:00.000Z",
)


def seed_demo(table: Any) -> dict[str, str]:
    """Creates the demo coach (once) and a fresh conversation; returns their ids for outputs.json."""
    DynamoCoachRepository(table).create_coach(DEMO_COACH)
    conversation = DynamoConversationRepository(table).create_conversation(
        DEMO_USER_ID, DEMO_COACH_ID, "Getting started"
    )
    return {"userId": DEMO_USER_ID, "coachId": DEMO_COACH_ID, "conversationId": conversation.conversation_id}
