"""Conversations and their messages in memory, with the DynamoDB adapter's turn semantics.

Each method does under one lock what the adapter does in one transaction or conditional write, so
concurrent tests race exactly where DynamoDB would let them and nowhere else. Messages sort by the
adapter's own sort keys (a turn's reply right after its user message); ties keep the order they
were stored in.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.clock import new_id, now_iso
from shared.errors import IdempotencyMismatch
from shared.store.dynamodb import keys
from shared.store.dynamodb.conversations import IN_FLIGHT
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import ConversationRepository, TurnStart
from shared.store.records import ChatMessage, Conversation

ConversationKey = tuple[str, str, str]  # user, coach, conversation
PartitionKey = tuple[str, str]  # user, conversation: where messages, markers and outbox items live


@dataclass
class _Marker:
    """The `clientMessageId` marker: pending (until `pending_until`), then complete (with the reply) or failed."""

    user_message: ChatMessage
    digest: str
    position: str
    pending_until: int
    state: str = "pending"
    attempt: int = 1
    reply: ChatMessage | None = None
    partial: str = ""


class InMemoryConversationRepository(ConversationRepository):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._conversations: dict[ConversationKey, Conversation] = {}
        self._messages: dict[PartitionKey, dict[str, tuple[int, ChatMessage]]] = {}
        self._markers: dict[tuple[str, str, str], _Marker] = {}
        self.outbox: dict[tuple[str, str, str], dict[str, Any]] = {}  # (user, conversation, user message id)
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
            stored = sorted((self._messages.get((user_id, conversation_id)) or {}).items())
        shown = [message for _, (_, message) in stored if not (message.metadata and message.metadata.superseded)]
        if limit is not None:
            shown = shown[-limit:] if limit > 0 else []
        return shown

    def begin_turn(
        self, conversation: Conversation, message: ChatMessage, *, digest: str, until_epoch: int
    ) -> TurnStart:
        marker_key = _marker_key(conversation, message.client_message_id)
        with self._lock:
            marker = self._markers.get(marker_key) if marker_key else None
            if marker is not None:
                return self._resume(marker, digest, until_epoch)
            if _key(conversation) not in self._conversations:
                raise RecordNotFound("conversation not found")
            position = keys.message_sk(now_iso(), message.id)
            self._store(conversation, position, message)
            if marker_key:
                self._markers[marker_key] = _Marker(message, digest, position, until_epoch)
        return TurnStart(user_message=message, position=position)

    def finish_turn(
        self,
        conversation: Conversation,
        turn: TurnStart,
        reply: ChatMessage,
        post_turn_job: Mapping[str, Any] | None = None,
    ) -> None:
        marker_key = _marker_key(conversation, turn.user_message.client_message_id)
        with self._lock:
            if _key(conversation) not in self._conversations:  # the adapter's transaction is cancelled
                raise RecordNotFound("conversation not found")
            marker = self._markers.get(marker_key) if marker_key else None
            if marker is not None and (marker.attempt, marker.state) != (turn.attempt, "pending"):
                raise WriteConflict("this attempt no longer holds the message")
            position = keys.reply_sk(turn.position, turn.attempt)
            self._store(conversation, position, reply)
            if turn.supersedes:
                self._supersede(conversation, turn.supersedes)
            if marker is not None:
                complete = reply.metadata is None or reply.metadata.status == "complete"
                marker.state, marker.reply = ("complete" if complete else "failed"), reply
                if not complete:
                    marker.partial = position
            if post_turn_job is not None:
                self.outbox[(conversation.user_id, conversation.conversation_id, turn.user_message.id)] = dict(
                    post_turn_job
                )

    def fail_turn(self, conversation: Conversation, turn: TurnStart) -> None:
        marker_key = _marker_key(conversation, turn.user_message.client_message_id)
        with self._lock:
            marker = self._markers.get(marker_key) if marker_key else None
            if marker is not None and (marker.attempt, marker.state) == (turn.attempt, "pending"):
                marker.state = "failed"

    def save_summary(self, conversation: Conversation, summary: str, through: int) -> None:
        with self._lock:
            current = self._conversations.get(_key(conversation))
            if current is not None and current.summarized_through < through:
                self._conversations[_key(conversation)] = current.model_copy(
                    update={"summary": summary, "summarized_through": through}
                )

    def _resume(self, marker: _Marker, digest: str, until_epoch: int) -> TurnStart:
        """A repeated `clientMessageId`: replay a finished turn, take over a failed or abandoned one once,
        refuse one in flight or one with other content."""
        if marker.digest != digest:
            raise IdempotencyMismatch()
        if marker.state == "complete":
            return TurnStart(marker.user_message, replay=marker.reply, attempt=marker.attempt, position=marker.position)
        abandoned = marker.state == "pending" and marker.pending_until < int(self._clock())
        if marker.state != "failed" and not abandoned:
            raise WriteConflict(IN_FLIGHT)
        marker.state, marker.attempt, marker.pending_until = "pending", marker.attempt + 1, until_epoch
        return TurnStart(
            marker.user_message, attempt=marker.attempt, position=marker.position, supersedes=marker.partial
        )

    def _store(self, conversation: Conversation, position: str, message: ChatMessage) -> None:
        """The message and its count, as the adapter's transaction writes them (the lock is held)."""
        partition = (conversation.user_id, conversation.conversation_id)
        self._messages.setdefault(partition, {})[position] = (next(self._sequence), message)
        current = self._conversations[_key(conversation)]
        self._conversations[_key(conversation)] = current.model_copy(
            update={"message_count": current.message_count + 1, "updated_at": now_iso()}
        )

    def _supersede(self, conversation: Conversation, position: str) -> None:
        partition = self._messages[(conversation.user_id, conversation.conversation_id)]
        order, message = partition[position]
        metadata = message.metadata.model_copy(update={"superseded": True}) if message.metadata else None
        partition[position] = (order, message.model_copy(update={"metadata": metadata}))


def _key(conversation: Conversation) -> ConversationKey:
    return (conversation.user_id, conversation.coach_id, conversation.conversation_id)


def _marker_key(conversation: Conversation, client_message_id: str | None) -> tuple[str, str, str] | None:
    if not client_message_id:
        return None
    return (conversation.user_id, conversation.conversation_id, client_message_id)
