"""Conversations and their messages in the single table.

A turn is two transactions. `begin_turn` stores the user's message (and, with a `clientMessageId`,
a marker that makes a retry idempotent) before any model call; `finish_turn` stores the reply,
whole or partial, and completes the marker. A repeat of a finished turn is answered from the
store; a repeat of a turn still in flight is a `WriteConflict`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from shared.clock import new_id, now_iso
from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, conditional_write, dynamo_safe
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import ConversationRepository, TurnStart
from shared.store.records import ChatMessage, Conversation

IN_FLIGHT = "this message is already being answered"


class DynamoConversationRepository(TableAdapter, ConversationRepository):
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
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
            "ExpressionAttributeValues": {
                ":pk": keys.conversation_pk(user_id, conversation_id),
                ":msg": "MSG#",
            },
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
            items.reverse()
        return [ChatMessage.model_validate(item["message"]) for item in items]

    def begin_turn(self, conversation: Conversation, message: ChatMessage) -> TurnStart:
        if message.client_message_id:
            marker = self._marker(conversation, message.client_message_id)
            if marker is not None:
                return self._resume(conversation, marker)
        transaction = [self._put_message(conversation, message), self._count_message(conversation)]
        if message.client_message_id:
            transaction.append(self._put_marker(conversation, message))
        try:
            self.table.meta.client.transact_write_items(TransactItems=transaction)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise RecordNotFound("conversation not found") from exc
            raise WriteConflict(IN_FLIGHT) from exc
        return TurnStart(user_message=message)

    def finish_turn(self, conversation: Conversation, user_message: ChatMessage, reply: ChatMessage) -> None:
        transaction = [self._put_message(conversation, reply), self._count_message(conversation)]
        if user_message.client_message_id:
            transaction.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": _av(self._marker_key(conversation, user_message.client_message_id)),
                        "UpdateExpression": "SET #state = :state, replyMessage = :reply",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": _av(
                            {
                                ":state": "complete" if _is_complete(reply) else "failed",
                                ":reply": reply.model_dump(by_alias=True, exclude_none=True),
                            }
                        ),
                    }
                }
            )
        self.table.meta.client.transact_write_items(TransactItems=transaction)

    def fail_turn(self, conversation: Conversation, user_message: ChatMessage) -> None:
        if not user_message.client_message_id:
            return
        self.table.update_item(
            Key=self._marker_key(conversation, user_message.client_message_id),
            UpdateExpression="SET #state = :failed",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":failed": "failed"},
        )

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
            pass  # gone, or a newer summary is stored already

    def _resume(self, conversation: Conversation, marker: dict[str, Any]) -> TurnStart:
        user_message = ChatMessage.model_validate(marker["userMessage"])
        if marker.get("state") == "complete":
            return TurnStart(user_message=user_message, replay=ChatMessage.model_validate(marker["replyMessage"]))
        if marker.get("state") == "failed":
            self._claim_failed_marker(conversation, user_message)
            return TurnStart(user_message=user_message)  # answered before but failed: answer again
        raise WriteConflict(IN_FLIGHT)

    def _claim_failed_marker(self, conversation: Conversation, user_message: ChatMessage) -> None:
        """One retry at a time may take over a failed turn; a concurrent one gets a 409."""
        assert user_message.client_message_id
        try:
            with conditional_write():
                self.table.update_item(
                    Key=self._marker_key(conversation, user_message.client_message_id),
                    UpdateExpression="SET #state = :pending",
                    ConditionExpression="#state = :failed",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":pending": "pending", ":failed": "failed"},
                )
        except ConditionFailed:
            raise WriteConflict(IN_FLIGHT) from None

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

    def _put_message(self, conversation: Conversation, message: ChatMessage) -> dict[str, Any]:
        item = {
            "pk": keys.conversation_pk(conversation.user_id, conversation.conversation_id),
            "sk": keys.message_sk(now_iso(), message.id),
            "type": "message",
            "message": message.model_dump(by_alias=True, exclude_none=True),
        }
        return self._put_new(item)

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        """A transaction step that writes `item` only if it does not exist yet."""
        return {
            "Put": {"TableName": self.table.name, "Item": _av(item), "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _count_message(self, conversation: Conversation) -> dict[str, Any]:
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

    def _put_marker(self, conversation: Conversation, message: ChatMessage) -> dict[str, Any]:
        assert message.client_message_id
        item = {
            **self._marker_key(conversation, message.client_message_id),
            "type": "client-message",
            "state": "pending",
            "userMessage": message.model_dump(by_alias=True, exclude_none=True),
        }
        return self._put_new(item)


def _is_complete(reply: ChatMessage) -> bool:
    return reply.metadata is None or reply.metadata.status == "complete"


def _av(values: dict[str, Any]) -> dict[str, Any]:
    """Values for a transaction through the resource's client, which serializes them itself."""
    return {name: dynamo_safe(value) for name, value in values.items()}
