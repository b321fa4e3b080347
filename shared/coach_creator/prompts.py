"""The prompt for one interview answer, shared by the streaming and the fallback paths.

The system prompt is split: the interviewer persona and the marker instruction never change, so the
provider caches them after the first turn; progress, the current and the next question and the
level so far change every turn and go in the dynamic part.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.coach_creator.questions import Level, Question, applicable_questions
from shared.coach_creator.sophistication import MARKER_INSTRUCTION
from shared.models import Message, ModelRequest, SystemPrompt

MAX_TOKENS = 500
OPENING = "Hi! I'd like to create my personal AI fitness coach."

STATIC_PROMPT = "\n\n".join(
    [
        "You are the coach creator: a friendly, expert fitness interviewer getting to know an athlete so a "
        "personal AI coach can be built for them. You ask one question at a time, in the order you are given.",
        "For each answer: respond briefly and warmly in one or two sentences, showing you understood "
        "something specific they said (no lecture, no plan yet, no medical advice beyond suggesting a "
        "professional for pain or injury). Then ask the next question you are given, close to its wording, "
        "as the last sentence of your text. Match your vocabulary to the athlete's level: plain words for "
        "beginners, technical terms only for those who use them. Plain conversational text, no headings, "
        "no lists, under 100 words.",
        "If the answer is off topic or unclear, acknowledge it kindly and still ask the next question.",
        MARKER_INSTRUCTION,
    ]
)


def dynamic_prompt(question: Question, following: Question | None, answered_before: int, level: Level) -> str:
    total = len(applicable_questions(level))
    parts = [
        f"Interview progress: this is answer {answered_before + 1} of about {total} questions.",
        f"The athlete's sophistication so far: {level}.",
        f'The question they are answering now ({question.topic}): "{question.text}"',
    ]
    if following is None:
        parts.append(
            "This was the last question: thank them warmly, say in one sentence what you learned about them, "
            "and tell them their coach is being built now. Do not ask another question."
        )
    else:
        parts.append(f'The next question to ask ({following.topic}): "{following.text}"')
    return "\n".join(parts)


def interview_messages(history: Sequence[tuple[str, str]], question: Question, answer: str) -> list[Message]:
    """The conversation as the model API wants it: starts with the user, roles alternating.

    `history` holds (what the interviewer asked, what the athlete answered) for the past answers,
    oldest first; an opening line from the user comes first so the interviewer's first question
    has something to follow.
    """
    messages = [Message(role="user", text=OPENING)]
    for asked, answered in history:
        messages.append(Message(role="assistant", text=asked.strip() or "(question)"))
        messages.append(Message(role="user", text=answered.strip() or "(no answer)"))
    messages.append(Message(role="assistant", text=question.text))
    messages.append(Message(role="user", text=answer.strip() or "(no answer)"))
    return messages


def interview_request(
    model_id: str,
    question: Question,
    following: Question | None,
    history: Sequence[tuple[str, str]],
    level: Level,
    answer: str,
) -> ModelRequest:
    """The request for the interviewer's reply to `answer`, which must end with the level marker."""
    return ModelRequest(
        model_id=model_id,
        messages=tuple(interview_messages(history, question, answer)),
        system=SystemPrompt(static=STATIC_PROMPT, dynamic=dynamic_prompt(question, following, len(history), level)),
        max_tokens=MAX_TOKENS,
    )
