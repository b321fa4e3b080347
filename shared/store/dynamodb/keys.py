"""The single-table key design, in one place (see the README's "Data model" section).

Every key starts from the authenticated user's id, so no access pattern can reach another user's
items: scoping by user is a property of the keys, not a check someone might forget.
"""

from __future__ import annotations


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def coach_sk(coach_id: str) -> str:
    return f"COACH#{coach_id}"


def conversation_sk(coach_id: str, conversation_id: str) -> str:
    return f"CONV#{coach_id}#{conversation_id}"


def conversation_pk(user_id: str, conversation_id: str) -> str:
    """Messages live in their conversation's own partition: one query reads them in order."""
    return f"USER#{user_id}#CONV#{conversation_id}"


def creator_session_sk(session_id: str) -> str:
    return f"CREATOR#{session_id}"


def message_sk(created_at: str, message_id: str) -> str:
    """Server time first, so a query of the conversation's partition returns messages in order."""
    return f"MSG#{created_at}#{message_id}"


def reply_sk(user_message_sk: str, attempt: int) -> str:
    """Right after its user message, whenever it is stored: turns never interleave, and a retry's
    reply sorts after the partial one it supersedes."""
    return f"{user_message_sk}#R{attempt:03d}"


def client_message_sk(client_message_id: str) -> str:
    return f"CLIENT#{client_message_id}"


POST_TURN_ITEM_TYPE = "post-turn-job"  # the outbox item's `type`: what the stream's filter lets through


def post_turn_sk(user_message_id: str) -> str:
    """The post-turn job of one turn (the outbox item), beside the turn's messages."""
    return f"POSTTURN#{user_message_id}"


def memory_prefix(coach_id: str) -> str:
    return f"MEMORY#{coach_id}#"


def memory_sk(coach_id: str, created_at: str, memory_id: str) -> str:
    """Time after the coach, so the newest memories come first in a reverse query."""
    return f"{memory_prefix(coach_id)}{created_at}#{memory_id}"


def workout_sk(performed_on: str, workout_id: str) -> str:
    return f"WORKOUT#{performed_on}#{workout_id}"


def rate_limit_pk(user_id: str) -> str:
    return f"RATE#{user_id}"
