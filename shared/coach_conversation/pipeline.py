"""One conversation turn: `open_conversation_turn` (the whole pre-stream phase), then its events.

The opener does everything that may still refuse the turn with a status: the conversation and the
coach are loaded (404), the images read (400/403), and the user's message stored, or a stored
answer to the same `clientMessageId` found (409 while that turn is in flight). The context (three
bounded reads at once) loads while the message is stored, so a turn that passed its checks pays one
round trip for both. Once the opener returns, nothing refuses any more: `events()` says `start`, the
router (one small-model call) runs, and the reply's stream starts as soon as the context is read,
never after the router, whose progress lines are shown only if they come before the first token;
the reply is stored, whole or partial, with the post-turn job the router asked for; `complete`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.clock import new_id, now_iso
from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.progress import opening_line, route_lines
from shared.coach_conversation.prompts import HISTORY_MESSAGES, TurnContext, reply_request
from shared.coach_conversation.router import DEFAULT_ROUTE, RouteDecision, decide_route
from shared.concurrency import WORKERS, gather
from shared.deadline import claim_until
from shared.errors import NotFound
from shared.events import ChunkEvent, CompleteEvent, StartEvent, TurnEvent, TurnFailed
from shared.models import Image, ModelDependencies
from shared.reply_stream import ReplyOutcome, stream_reply
from shared.store.ports import (
    CoachRepository,
    ConversationRepository,
    ImageSource,
    MemoryRepository,
    TurnStart,
    WorkoutRepository,
)
from shared.store.records import ChatMessage, Coach, Conversation, MessageMetadata

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TurnDependencies(ModelDependencies):
    """The ports a turn talks to; tests and the local stack swap adapters, never monkeypatch."""

    conversations: ConversationRepository
    coaches: CoachRepository
    images: ImageSource
    memories: MemoryRepository
    workouts: WorkoutRepository
    claim_margin_seconds: float = 30.0  # how long after the turn's deadline its claim on a message lasts


@dataclass(frozen=True)
class ConversationMessage:
    """What the user sent, authenticated and validated by the caller."""

    user_id: str
    coach_id: str
    conversation_id: str
    text: str
    timestamp: str
    client_message_id: str | None = None
    image_keys: tuple[str, ...] = ()

    def digest(self) -> str:
        """What a repeat of the same `clientMessageId` must match: the text and the images."""
        content = json.dumps([self.text, list(self.image_keys)], ensure_ascii=False)
        return hashlib.sha256(content.encode("utf-8")).hexdigest()


def open_conversation_turn(
    deps: TurnDependencies,
    message: ConversationMessage,
    deadline: float,
    request_id: str,
    admit: Callable[[], None] = lambda: None,
) -> ConversationTurn:
    """The turn's whole pre-stream phase; each refusal raises, and a refused turn has stored nothing.

    `admit` gives the verdict of checks the caller runs meanwhile (the rate limit): it is asked after
    the two reads, which run at once, and before anything is written or refused for a missing record.
    """
    user_id, coach_id = message.user_id, message.coach_id
    conversation, coach = gather(
        lambda: deps.conversations.get_conversation(user_id, coach_id, message.conversation_id),
        lambda: deps.coaches.get_coach(user_id, coach_id),
    )
    admit()
    if conversation is None:
        raise NotFound("conversation not found")
    if coach is None:
        raise NotFound("coach not found")
    images = deps.images.load(message.user_id, message.image_keys) if message.image_keys else ()
    user_message = ChatMessage(
        id=new_id(),
        role="user",
        content=message.text,
        timestamp=message.timestamp,
        client_message_id=message.client_message_id,
        image_s3_keys=message.image_keys or None,
    )
    # A process that dies mid-turn leaves its claim behind; it lapses this long after the turn's own deadline
    # (which is before the function's), so a retry then runs the turn again.
    until = claim_until(time.time(), deadline - time.monotonic(), deps.claim_margin_seconds)
    # Read only once every check has passed, so a refused request costs no more reads than before.
    context = WORKERS.submit(load_context, deps, conversation)
    try:
        begun = deps.conversations.begin_turn(conversation, user_message, digest=message.digest(), until_epoch=until)
    except BaseException:
        wait((context,))  # nothing keeps running behind a refusal
        raise
    return ConversationTurn(conversation, coach, images, begun, deps, deadline, request_id, context)


def load_context(deps: TurnDependencies, conversation: Conversation) -> TurnContext:
    """History, recent memories and recent workouts: bounded reads, all three at once. The history is
    read before the user's message is stored; the prompt leaves that message out of it by id anyway."""
    user_id, coach_id = conversation.user_id, conversation.coach_id
    history, memories, workouts = gather(
        lambda: deps.conversations.list_messages(user_id, conversation.conversation_id, HISTORY_MESSAGES),
        lambda: deps.memories.recent_memories(user_id, coach_id),
        lambda: deps.workouts.recent_workouts(user_id),
    )
    return TurnContext(history=history, memories=memories, workouts=workouts)


class ConversationTurn:
    """A turn that may no longer be refused: its events always end in `complete` or `TurnFailed`."""

    def __init__(
        self,
        conversation: Conversation,
        coach: Coach,
        images: tuple[Image, ...],
        begun: TurnStart,
        deps: TurnDependencies,
        deadline: float,
        request_id: str,
        context: Future[TurnContext],
    ) -> None:
        self.conversation = conversation
        self.coach = coach
        self.images = images
        self.begun = begun
        self.deps = deps
        self.deadline = deadline
        self.request_id = request_id
        self.context = context
        self.started = time.monotonic()

    def events(self) -> Iterator[TurnEvent]:
        user_message = self.begun.user_message
        if self.begun.replay is not None:
            yield from self._replay(user_message, self.begun.replay)
            return
        yield StartEvent(requestId=self.request_id)
        routing = WORKERS.submit(self._route, user_message.content)
        yield opening_line(user_message.content)
        request = reply_request(
            self.deps.model_settings.reply_model_id,
            self.coach,
            self.conversation,
            self.context.result(),
            user_message,
            self.images,
            datetime.now(UTC),
        )
        outcome = ReplyOutcome()
        try:
            reply_events = stream_reply(self.deps.model, request, self.deadline, outcome, observe=self.deps.observe)
            yield from self._with_route_lines(reply_events, routing)
        finally:
            reply = self._store_reply(outcome, self._route_if_known(routing))
        if outcome.error is not None:
            yield TurnFailed(outcome.error)
            return
        yield self._complete(user_message, reply)

    def _route(self, text: str) -> RouteDecision:
        return decide_route(self.deps.model, self.deps.model_settings.side_model_id, text)

    def _with_route_lines(
        self, reply_events: Iterator[ChunkEvent], routing: Future[RouteDecision]
    ) -> Iterator[TurnEvent]:
        """The reply's events, led by the router's progress lines if it answers before the first token.

        The first token is awaited on a worker so that whichever comes first is seen first; a token is
        never held back for a line, and lines that come after it are not shown.
        """
        first = WORKERS.submit(next, reply_events, None)
        try:
            wait((first, routing), return_when=FIRST_COMPLETED)
            if not first.done():
                yield from route_lines(self._route_of(routing))
            leading = first.result()
            if leading is not None:
                yield leading
                yield from reply_events
        except BaseException:  # the client left, or something broke: the reply learns it, and says so
            wait((first,))  # a pull in flight ends (at the deadline at the latest) before the reply is closed
            reply_events.close()
            raise

    def _route_if_known(self, routing: Future[RouteDecision]) -> RouteDecision | None:
        """The router's answer if it has come; `complete` never waits for it (the post-turn worker asks
        the router itself when the job says the route is unknown)."""
        return self._route_of(routing) if routing.done() else None

    def _route_of(self, routing: Future[RouteDecision]) -> RouteDecision:
        """The answer of a router that has finished: the default route if it failed."""
        try:
            return routing.result(timeout=0)
        except Exception:
            logger.warning("router failed; using the default route")
            return DEFAULT_ROUTE

    def _store_reply(self, outcome: ReplyOutcome, route: RouteDecision | None) -> ChatMessage:
        """Stores whatever text exists, complete or not, even if the client has left; with a complete
        reply, the post-turn job in the same write, so the work cannot be lost or done twice."""
        reply = ChatMessage(
            id=new_id(),
            role="assistant",
            content=outcome.text,
            timestamp=now_iso(),
            metadata=MessageMetadata(
                model=outcome.model_id or self.deps.model_settings.reply_model_id,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                fallback=outcome.fallback,
                status=outcome.status,
                latency_ms=outcome.latency_ms,
            ),
        )
        conversations, turn = self.deps.conversations, self.begun
        if outcome.text or outcome.status == "complete":
            job = self._post_turn_job(reply, route) if outcome.status == "complete" else None
            try:
                conversations.finish_turn(self.conversation, turn, reply, job)
            except Exception:
                # The reply is lost, the user's message is not: free it for a retry now, not at the claim's expiry.
                self._fail_quietly()
                raise
        else:
            conversations.fail_turn(self.conversation, turn)
        if outcome.first_token_at is not None:
            self.deps.observe("TimeToFirstToken", (outcome.first_token_at - self.started) * 1000)
        self.deps.observe("OutputTokens", outcome.output_tokens)
        self.deps.observe("StreamDuration", (time.monotonic() - self.started) * 1000)
        return reply

    def _complete(self, user_message: ChatMessage, reply: ChatMessage) -> CompleteEvent:
        return CompleteEvent(
            conversationId=self.conversation.conversation_id,
            messageId=reply.id,
            fullMessage=reply.content,
            userMessage=user_message.contract(),
            aiMessage=reply.contract(),
        )

    def _replay(self, user_message: ChatMessage, reply: ChatMessage) -> Iterator[TurnEvent]:
        """A retried `clientMessageId` whose turn finished: the stored result, no model call."""
        yield StartEvent(requestId=self.request_id)
        if reply.content:
            yield ChunkEvent(content=reply.content)
        yield self._complete(user_message, reply)

    def _post_turn_job(self, reply: ChatMessage, route: RouteDecision | None) -> dict[str, object] | None:
        user_message = self.begun.user_message
        job = PostTurnJob(
            user_id=self.conversation.user_id,
            coach_id=self.conversation.coach_id,
            conversation_id=self.conversation.conversation_id,
            user_message_id=user_message.id,
            ai_message_id=reply.id,
            user_text=user_message.content,
            ai_text=reply.content,
            message_timestamp=user_message.timestamp,
            is_workout_log=route.is_workout_log if route else None,
            has_memory_to_save=route.has_memory_to_save if route else None,
            message_count=self.conversation.message_count + 2,
        )
        return job.model_dump(by_alias=True) if job.has_work else None

    def _fail_quietly(self) -> None:
        try:
            self.deps.conversations.fail_turn(self.conversation, self.begun)
        except Exception:
            logger.exception("the failed turn could not be marked; its claim lapses on its own")
