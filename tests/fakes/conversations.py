"""Conversations and their messages in memory, with the DynamoDB adapter's turn semantics.

Each method does under one lock what the adapter does in one transaction or conditional write, so
concurrent tests race exactly where DynamoDB would let them and nowhere else. Messages sort as the
adapter's sort key does (server time first); ties keep the order they were stored in.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from shared.clock import new_id, now_iso
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import ConversationRepository, TurnStart
from shared.store.records import ChatMessage, Conversation

IN_FLIGHT = "this message is already being answered"

ConversationKey = tuple[str, str, str]  # user, coach, conversation
PartitionKey = tuple[str, str]  # user, conversation: where messages and markers live


@dataclass
class _Marker:
    """The `clientMessageId` marker: pending while answered, then complete (with the reply) or failed."""

    state: str
    user_message: ChatMessage | None
    reply: ChatMessage | None = None


class InMemoryConversationRepository(ConversationRepository):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._conversations: dict[ConversationKey, Conversation] = {}
        self._messages: dict[PartitionKey, list[tuple[str, int, ChatMessage]]] = {}
        self._markers: dict[tuple[str, str, str], _Marker] = {}
        self._sequence = itertools.count()

    def create_conversation(self, user_id: str, coach_id: str, title: str) -> Conversation:
        stamp = now_iso()
        owner = {"user_id": user_id, "coach_id": coach_id}
        conversation = Conversation(**owner, conversation_id=new_id(), title=title, created_at=stamp, updated_at=stamp)
        with self._lock:
            self._conversations[_key(conversation)] = conversation
        return conversation

    def get_conversation(self, user_id: str, coach_id: str, conversation_id: str) -> Conversation | None:
        with self._lock:
            return self._conversations.get((user_id, coach_id, conversation_id))

    def list_messages(self, user_id: str, conversation_id: str, limit: int | None = None) -> list[ChatMessage]:
        with self._lock:
            stored = sorted(self._messages.get((user_id, conversation_id), []), key=lambda m: m[:2])
        if limit is not None:
            stored = stored[-limit:] if limit > 0 else []
        return [message for _, _, message in stored]

    def begin_turn(self, conversation: Conversation, message: ChatMessage) -> TurnStart:
        marker_key = _marker_key(conversation, message.client_message_id)
        with self._lock:
            marker = self._markers.get(marker_key) if marker_key else None
            if marker is not None:
                return _resume(marker)
            if _key(conversation) not in self._conversations:
                raise RecordNotFound("conversation not found")
            self._store(conversation, message)
            if marker_key:
                self._markers[marker_key] = _Marker(state="pending", user_message=message)
        return TurnStart(user_message=message)

    def finish_turn(self, conversation: Conversation, user_message: ChatMessage, reply: ChatMessage) -> None:
        marker_key = _marker_key(conversation, user_message.client_message_id)
        with self._lock:
            if _key(conversation) not in self._conversations:  # the adapter's transaction is cancelled
                raise RecordNotFound("conversation not found")
            self._store(conversation, reply)
            if marker_key:
                complete = reply.metadata is None or reply.metadata.status == "complete"
                self._mark(marker_key, "complete" if complete else "failed", reply)

    def fail_turn(self, conversation: Conversation, user_message: ChatMessage) -> None:
        marker_key = _marker_key(conversation, user_message.client_message_id)
        if marker_key:
            with self._lock:
                self._mark(marker_key, "failed", None)

    def save_summary(self, conversation: Conversation, summary: str, through: int) -> None:
        with self._lock:
            current = self._conversations.get(_key(conversation))
            if current is not None and current.summarized_through < through:
                self._conversations[_key(conversation)] = current.model_copy(
                    update={"summary": summary, "summarized_through": through}
                )

    def _store(self, conversation: Conversation, message: ChatMessage) -> None:
        """The message and its count, as the adapter's transaction writes them (the lock is held)."""
        partition = (conversation.user_id, conversation.conversation_id)
        self._messages.setdefault(partition, []).append((now_iso(), next(self._sequence), message))
        current = self._conversations[_key(conversation)]
        self._conversations[_key(conversation)] = current.model_copy(
            update={"message_count": current.message_count + 1, "updated_at": now_iso()}
        )

    def _mark(self, marker_key: tuple[str, str, str], state: str, reply: ChatMessage | None) -> None:
        """An unconditional update, as the adapter's: it creates the marker if none exists."""
        marker = self._markers.setdefault(marker_key, _Marker(state=state, user_message=None))
        marker.state = state
        if reply is not None:
            marker.reply = reply


def _resume(marker: _Marker) -> TurnStart:
    """A repeated `clientMessageId`: replay a finished turn, take over a failed one once, refuse one in flight."""
    if marker.user_message is None or marker.state == "pending":
        raise WriteConflict(IN_FLIGHT)
    if marker.state == "complete":
        return TurnStart(user_message=marker.user_message, replay=marker.reply)
    marker.state = "pending"
    return TurnStart(user_message=marker.user_message)


def _key(conversation: Conversation) -> ConversationKey:
    return (conversation.user_id, conversation.coach_id, conversation.conversation_id)


def _marker_key(conversation: Conversation, client_message_id: str | None) -> tuple[str, str, str] | None:
    if not client_message_id:
        return None
    return (conversation.user_id, conversation.conversation_id, client_message_id)
