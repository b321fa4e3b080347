"""Conversations and their messages in the single table.

A turn is two transactions. `begin_turn` stores the user's message (and, with a `clientMessageId`,
a marker that makes a retry idempotent) before any model call; `finish_turn` stores the reply,
whole or partial, with the post-turn job (an outbox item the table's stream delivers), and settles
the marker. The marker's rules mirror Powertools' idempotency records: a request digest (a repeat
with other content is refused), an in-progress state that expires (`pendingUntil`, a bounded time
after the function's own deadline, so a turn whose process died can be retried), and a completed
state that is replayed.

Both transactions carry a `ClientRequestToken` derived from the turn, so when a write was applied
but its answer lost, botocore's retry of it is answered as a success instead of failing its own
conditions. Single-item updates accept their own earlier write through their conditions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from shared.clock import new_id, now_iso
from shared.errors import IdempotencyMismatch
from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, conditional_write, dynamo_safe
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import ConversationRepository, TurnStart
from shared.store.records import ChatMessage, Conversation

IN_FLIGHT = "this message is already being answered"
OUTBOX_TTL_SECONDS = 7 * 24 * 3600
_TOKENS = uuid.UUID("5b1f0c3e-6d2a-4f59-9a51-3c1f2d8e7a40")  # namespace of the transactions' request tokens


def request_token(*parts: str) -> str:
    """A `ClientRequestToken` (at most 36 characters) that names one logical write, stable across retries."""
    return str(uuid.uuid5(_TOKENS, "/".join(parts)))


class DynamoConversationRepository(TableAdapter, ConversationRepository):
    def __init__(
        self, table: Any | None = None, clock: Callable[[], float] = time.time, *, table_name: str | None = None
    ) -> None:
        super().__init__(table, table_name=table_name)
        self._clock = clock

    def create_conversation(self, user_id: str, coach_id: str, title: str) -> Conversation:
        created = now_iso()
        conversation = Conversation(
            user_id=user_id,
            coach_id=coach_id,
            conversation_id=new_id(),
            title=title,
            created_at=created,
            updated_at=created,
        )
        self.table.put_item(
            Item={**self._key(conversation), **conversation.model_dump(), "type": "conversation"},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return conversation

    def get_conversation(self, user_id: str, coach_id: str, conversation_id: str) -> Conversation | None:
        item = self.table.get_item(
            Key={"pk": keys.user_pk(user_id), "sk": keys.conversation_sk(coach_id, conversation_id)},
            ConsistentRead=True,
        ).get("Item")
        return Conversation.model_validate(item) if item else None

    def list_messages(self, user_id: str, conversation_id: str, limit: int | None = None) -> list[ChatMessage]:
        """Superseded partial replies stay stored but are not listed."""
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
            "FilterExpression": "attribute_not_exists(#message.#metadata.#superseded)",
            "ExpressionAttributeNames": {"#message": "message", "#metadata": "metadata", "#superseded": "superseded"},
            "ExpressionAttributeValues": {":pk": keys.conversation_pk(user_id, conversation_id), ":msg": "MSG#"},
            "ScanIndexForward": limit is None,
        }
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                query["Limit"] = limit - len(items)
            page = self.table.query(**query)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page or (limit is not None and len(items) >= limit):
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if limit is not None:
            items = items[:limit]
            items.reverse()
        return [ChatMessage.model_validate(item["message"]) for item in items]

    def begin_turn(
        self, conversation: Conversation, message: ChatMessage, *, digest: str, until_epoch: int
    ) -> TurnStart:
        client_id = message.client_message_id
        if client_id:
            marker = self._marker(conversation, client_id)
            if marker is not None:
                return self._resume(conversation, marker, message, digest, until_epoch)
        position = keys.message_sk(now_iso(), message.id)
        transaction = [self._put_new(self._message_item(conversation, position, message)), self._count(conversation)]
        if client_id:
            transaction.append(self._put_new(self._marker_item(conversation, message, digest, position, until_epoch)))
        try:
            self._transact(transaction, request_token(conversation.conversation_id, message.id, "begin"))
        except ClientError as exc:
            reasons = _cancellation_reasons(exc)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise RecordNotFound("conversation not found") from exc
            if client_id and len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                marker = self._marker(conversation, client_id)  # a concurrent request began it first
                if marker is not None:
                    return self._resume(conversation, marker, message, digest, until_epoch)
            raise
        return TurnStart(user_message=message, position=position)

    def finish_turn(
        self,
        conversation: Conversation,
        turn: TurnStart,
        reply: ChatMessage,
        post_turn_job: Mapping[str, Any] | None = None,
    ) -> None:
        user_message = turn.user_message
        reply_position = keys.reply_sk(turn.position, turn.attempt)
        transaction = [
            self._put_new(self._message_item(conversation, reply_position, reply)),
            self._count(conversation),
        ]
        if turn.supersedes:
            transaction.append(self._supersede(conversation, turn.supersedes))
        if user_message.client_message_id:
            complete = _is_complete(reply)
            transaction.append(
                self._settle(
                    conversation,
                    turn,
                    "complete" if complete else "failed",
                    {":reply": reply.model_dump(by_alias=True, exclude_none=True), ":partial": reply_position},
                    "replyMessage = :reply" + ("" if complete else ", partialReply = :partial"),
                )
            )
        if post_turn_job is not None:
            transaction.append(
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": _av(self._outbox_item(conversation, turn, post_turn_job)),
                    }
                }
            )
        self._transact(
            transaction, request_token(conversation.conversation_id, user_message.id, "finish", str(turn.attempt))
        )

    def fail_turn(self, conversation: Conversation, turn: TurnStart) -> None:
        if not turn.user_message.client_message_id:
            return
        token = request_token(conversation.conversation_id, turn.user_message.id, "fail", str(turn.attempt))
        try:
            self._transact([self._settle(conversation, turn, "failed", {}, "")], token)
        except ClientError as exc:
            if _cancellation_reasons(exc) != ["ConditionalCheckFailed"]:
                raise  # otherwise settled already, or taken over: nothing left to mark

    def save_summary(self, conversation: Conversation, summary: str, through: int) -> None:
        try:
            with conditional_write():
                self.table.update_item(
                    Key=self._key(conversation),
                    UpdateExpression="SET summary = :summary, summarized_through = :through",
                    ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(summarized_through) "
                    "OR summarized_through < :through)",
                    ExpressionAttributeValues={":summary": summary, ":through": through},
                )
        except ConditionFailed:
            pass  # gone, or this summary or a newer one is stored already

    def _resume(
        self, conversation: Conversation, marker: dict[str, Any], message: ChatMessage, digest: str, until_epoch: int
    ) -> TurnStart:
        if marker.get("digest", digest) != digest:
            raise IdempotencyMismatch()
        user_message = ChatMessage.model_validate(marker["userMessage"])
        position = str(marker.get("position", ""))
        attempt = int(marker.get("attempt", 1))
        state = marker.get("state")
        if state == "complete":
            return TurnStart(
                user_message=user_message,
                replay=ChatMessage.model_validate(marker["replyMessage"]),
                attempt=attempt,
                position=position,
            )
        abandoned = state == "pending" and int(marker.get("pendingUntil", 0)) < int(self._clock())
        if state != "failed" and not abandoned:
            raise WriteConflict(IN_FLIGHT)
        claim = new_id()
        try:
            with conditional_write():
                self.table.update_item(
                    Key=self._marker_key(conversation, message.client_message_id or ""),
                    UpdateExpression="SET #state = :pending, #attempt = :next, pendingUntil = :until, claim = :claim",
                    ConditionExpression="#attempt = :attempt AND (#state = :failed OR "
                    "(#state = :pending AND pendingUntil < :now)) OR claim = :claim",
                    ExpressionAttributeNames={"#state": "state", "#attempt": "attempt"},
                    ExpressionAttributeValues={
                        ":pending": "pending",
                        ":failed": "failed",
                        ":attempt": attempt,
                        ":next": attempt + 1,
                        ":until": until_epoch,
                        ":now": int(self._clock()),
                        ":claim": claim,
                    },
                )
        except ConditionFailed:
            raise WriteConflict(IN_FLIGHT) from None  # another retry took it over first
        return TurnStart(
            user_message=user_message,
            attempt=attempt + 1,
            position=position,
            supersedes=str(marker.get("partialReply", "")),
        )

    def _transact(self, items: list[dict[str, Any]], token: str) -> None:
        self.table.meta.client.transact_write_items(TransactItems=items, ClientRequestToken=token)

    def _marker(self, conversation: Conversation, client_message_id: str) -> dict[str, Any] | None:
        key = self._marker_key(conversation, client_message_id)
        return self.table.get_item(Key=key, ConsistentRead=True).get("Item")

    def _key(self, conversation: Conversation) -> dict[str, str]:
        return {
            "pk": keys.user_pk(conversation.user_id),
            "sk": keys.conversation_sk(conversation.coach_id, conversation.conversation_id),
        }

    def _marker_key(self, conversation: Conversation, client_message_id: str) -> dict[str, str]:
        return {
            "pk": keys.conversation_pk(conversation.user_id, conversation.conversation_id),
            "sk": keys.client_message_sk(client_message_id),
        }

    def _message_item(self, conversation: Conversation, position: str, message: ChatMessage) -> dict[str, Any]:
        return {
            "pk": keys.conversation_pk(conversation.user_id, conversation.conversation_id),
            "sk": position,
            "type": "message",
            "message": message.model_dump(by_alias=True, exclude_none=True),
        }

    def _marker_item(
        self, conversation: Conversation, message: ChatMessage, digest: str, position: str, until_epoch: int
    ) -> dict[str, Any]:
        return {
            **self._marker_key(conversation, message.client_message_id or ""),
            "type": "client-message",
            "state": "pending",
            "attempt": 1,
            "digest": digest,
            "position": position,
            "pendingUntil": until_epoch,
            "userMessage": message.model_dump(by_alias=True, exclude_none=True),
        }

    def _outbox_item(self, conversation: Conversation, turn: TurnStart, job: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "pk": keys.conversation_pk(conversation.user_id, conversation.conversation_id),
            "sk": keys.post_turn_sk(turn.user_message.id),
            "type": keys.POST_TURN_ITEM_TYPE,
            "job": dict(job),
            "expiresAt": int(self._clock()) + OUTBOX_TTL_SECONDS,
        }

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        """A transaction step that writes `item` only if it does not exist yet."""
        return {
            "Put": {"TableName": self.table.name, "Item": _av(item), "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _count(self, conversation: Conversation) -> dict[str, Any]:
        """Counts the message and proves the conversation still exists, in the same transaction."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": _av(self._key(conversation)),
                "UpdateExpression": "SET message_count = if_not_exists(message_count, :zero) + :one, updated_at = :now",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": _av({":zero": 0, ":one": 1, ":now": now_iso()}),
            }
        }

    def _settle(
        self, conversation: Conversation, turn: TurnStart, state: str, values: dict[str, Any], sets: str
    ) -> dict[str, Any]:
        """Ends this attempt's marker, once: only the attempt that holds it, and only while it is pending
        (a reply that was stored cannot then be marked failed by a late cleanup)."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": _av(self._marker_key(conversation, turn.user_message.client_message_id or "")),
                "UpdateExpression": "SET #state = :state" + (f", {sets}" if sets else ""),
                "ConditionExpression": "#attempt = :attempt AND #state = :pending",
                "ExpressionAttributeNames": {"#state": "state", "#attempt": "attempt"},
                "ExpressionAttributeValues": _av(
                    {":state": state, ":attempt": turn.attempt, ":pending": "pending", **values}
                ),
            }
        }

    def _supersede(self, conversation: Conversation, position: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": _av(
                    {"pk": keys.conversation_pk(conversation.user_id, conversation.conversation_id), "sk": position}
                ),
                "UpdateExpression": "SET #message.#metadata.#superseded = :true",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {
                    "#message": "message",
                    "#metadata": "metadata",
                    "#superseded": "superseded",
                },
                "ExpressionAttributeValues": _av({":true": True}),
            }
        }


def _cancellation_reasons(exc: ClientError) -> list[str | None]:
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    return [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]


def _is_complete(reply: ChatMessage) -> bool:
    return reply.metadata is None or reply.metadata.status == "complete"


def _av(values: dict[str, Any]) -> dict[str, Any]:
    """Values for a transaction through the resource's client, which serializes them itself."""
    return {name: dynamo_safe(value) for name, value in values.items()}
