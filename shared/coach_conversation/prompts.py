"""The reply's prompt, built once and shared by the streaming and the fallback paths.

The system prompt is split: the coach's persona is static per coach (cached after the first turn
with a cache point), while dates, memories, workouts and the summary change every turn. Nothing in
it waits for the router: the bounded memories and workouts always go in, with one token cap, so the
reply's stream starts as soon as the context is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.models import Image, Message, ModelRequest, SystemPrompt
from shared.store.records import ChatMessage, Coach, Conversation, Memory, Workout

HISTORY_MESSAGES = 20
REPLY_MAX_TOKENS = 1500  # the replies are asked to stay under 200 words; this only stops a runaway


@dataclass(frozen=True)
class TurnContext:
    history: list[ChatMessage]
    memories: list[Memory]
    workouts: list[Workout]


def coach_system_prompt(coach: Coach) -> str:
    parts = [
        f"You are {coach.name}, an AI fitness coach talking with one athlete in a chat app.",
        f"Personality: {coach.personality}" if coach.personality else "",
        f"Coaching style: {coach.coaching_style}" if coach.coaching_style else "",
        f"Methodology: {coach.methodology}" if coach.methodology else "",
        f"Program focus: {coach.program_focus}" if coach.program_focus else "",
        f"Safety notes (always respect these): {coach.safety_notes}" if coach.safety_notes else "",
        "Answer in plain conversational text, warm and specific, usually under 200 words. "
        "Never invent workouts the athlete did not report; when they report one, acknowledge it "
        "specifically. "
        "If something sounds like an injury, advise seeing a professional.",
    ]
    return "\n".join(part for part in parts if part)


def dynamic_prompt(conversation: Conversation, context: TurnContext, now: datetime) -> str:
    parts = [f"Today is {now.strftime('%A, %d %B %Y')}."]
    if conversation.summary:
        parts.append(f"Summary of this conversation so far: {conversation.summary}")
    if context.memories:
        parts.append("What the athlete told you before:\n" + "\n".join(f"- {m.content}" for m in context.memories))
    if context.workouts:
        lines = [f"- {w.performed_on}: {w.summary}" for w in context.workouts]
        parts.append("Recent logged workouts:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def history_messages(history: list[ChatMessage], exclude_id: str) -> list[Message]:
    """Past messages as the model wants them: starting with the user, roles alternating."""
    messages: list[Message] = []
    for past in history:
        if past.id == exclude_id or not past.content.strip():
            continue
        if messages and messages[-1].role == past.role:
            messages[-1] = Message(role=past.role, text=f"{messages[-1].text}\n\n{past.content}")
        else:
            messages.append(Message(role=past.role, text=past.content))
    while messages and messages[0].role != "user":
        messages.pop(0)
    return messages


def reply_request(
    model_id: str,
    coach: Coach,
    conversation: Conversation,
    context: TurnContext,
    user_message: ChatMessage,
    images: tuple[Image, ...],
    now: datetime,
) -> ModelRequest:
    messages = history_messages(context.history, user_message.id)
    current = Message(role="user", text=user_message.content, images=images)
    if messages and messages[-1].role == "user":
        current = Message(role="user", text=f"{messages.pop().text}\n\n{user_message.content}", images=images)
    return ModelRequest(
        model_id=model_id,
        messages=(*messages, current),
        system=SystemPrompt(static=coach_system_prompt(coach), dynamic=dynamic_prompt(conversation, context, now)),
        max_tokens=REPLY_MAX_TOKENS,
    )
