"""The pure pieces of the coach creator interview: questions, progress, the marker, levels, prompts."""

from __future__ import annotations

import itertools

import pytest

from shared.coach_creator.prompts import STATIC_PROMPT, interview_request
from shared.coach_creator.questions import (
    LEVELS,
    QUESTIONS,
    Progress,
    applicable_questions,
    level_rank,
    next_question,
    progress,
    question_by_id,
)
from shared.coach_creator.sophistication import (
    MARKER_INSTRUCTION,
    MarkerFilter,
    combine,
    signals_level,
    strip_marker,
)

# --- questions -------------------------------------------------------------------------------------


def test_question_set_loads_with_unique_ids():
    ids = [q.id for q in QUESTIONS]
    assert 12 <= len(ids) <= 15
    assert len(set(ids)) == len(ids)
    assert all(q.text.strip() and q.topic.strip() for q in QUESTIONS)
    assert question_by_id("goals") is QUESTIONS[0]
    with pytest.raises(KeyError):
        question_by_id("nope")


def test_topics_cover_the_interview():
    topics = " ".join(q.topic for q in QUESTIONS)
    for word in ("goals", "experience", "schedule", "equipment", "injuries", "likes", "nutrition", "coaching"):
        assert word in topics
    assert "motivation" in topics


def test_level_gating():
    beginner, intermediate, advanced = (applicable_questions(level) for level in LEVELS)
    assert len(beginner) < len(intermediate) < len(advanced) == len(QUESTIONS)
    assert set(map(id, beginner)) < set(map(id, intermediate)) < set(map(id, advanced))
    assert all(q.min_level == "BEGINNER" for q in beginner)
    assert {q.id for q in intermediate} - {q.id for q in beginner} == {"training_split"}
    assert {"current_numbers", "intensity", "periodization"} <= {q.id for q in advanced} - {q.id for q in intermediate}
    assert [q for q in QUESTIONS if q in beginner] == beginner  # interview order kept
    assert [level_rank(level) for level in LEVELS] == [0, 1, 2]


def test_next_question_walks_the_applicable_questions_in_order():
    answered: list[str] = []
    asked = []
    while (question := next_question(answered, "INTERMEDIATE")) is not None:
        asked.append(question)
        answered.append(question.id)
    assert asked == applicable_questions("INTERMEDIATE")
    assert next_question([], "ADVANCED") == QUESTIONS[0]
    assert next_question(answered, "ADVANCED").min_level == "ADVANCED"  # a level rise adds questions
    assert next_question([q.id for q in QUESTIONS], "BEGINNER") is None


def test_next_question_skips_out_of_order_answers_and_ignores_unknown_ids():
    first_two = [QUESTIONS[1].id, "retired_question"]
    assert next_question(first_two, "BEGINNER") == QUESTIONS[0]
    assert next_question([QUESTIONS[0].id, *first_two], "BEGINNER") == QUESTIONS[2]


def test_progress_counts():
    assert progress([], "BEGINNER") == Progress(0, len(applicable_questions("BEGINNER")), 0, "BEGINNER")
    done = [q.id for q in applicable_questions("BEGINNER")]
    assert progress(done, "BEGINNER").percentage == 100
    assert progress(done + done, "BEGINNER").questions_completed == len(done)  # duplicates count once
    three = progress(done[:3], "ADVANCED")
    assert three.contract() == {
        "questionsCompleted": 3,
        "totalQuestions": len(QUESTIONS),
        "percentage": round(300 / len(QUESTIONS)),
        "sophisticationLevel": "ADVANCED",
    }


def test_progress_keeps_answers_from_a_higher_level_and_never_claims_done_early():
    advanced_only = [q.id for q in QUESTIONS if q.min_level == "ADVANCED"]
    beginner = [q.id for q in applicable_questions("BEGINNER")]
    after_drop = progress([*beginner[:-1], *advanced_only], "BEGINNER")
    assert after_drop.total_questions == len(beginner) + len(advanced_only)
    assert after_drop.questions_completed == len(beginner) - 1 + len(advanced_only)
    assert after_drop.percentage == round(100 * after_drop.questions_completed / after_drop.total_questions) < 100
    assert progress([*beginner, *advanced_only], "BEGINNER").percentage == 100
    assert progress(["unknown"], "BEGINNER").questions_completed == 0


def test_progress_percentage_is_an_int_within_bounds():
    ids = [q.id for q in QUESTIONS]
    for level in LEVELS:
        for n in range(len(ids) + 1):
            result = progress(ids[:n], level)
            assert isinstance(result.percentage, int)
            assert 0 <= result.percentage <= 100
            assert (result.percentage == 100) == (next_question(ids[:n], level) is None)


# --- the marker ------------------------------------------------------------------------------------

REPLIES = [
    # (reply as the model writes it, what the user must see, the level)
    (
        "Love that goal! How many days a week can you train?\n\n[[SOPHISTICATION:INTERMEDIATE]]",
        "Love that goal! How many days a week can you train?",
        "INTERMEDIATE",
    ),
    ("Great [[ sophistication: advanced ]] and more.\n", "Great and more.\n", "ADVANCED"),
    ("[[Sophistication : Beginner]]\nWelcome aboard!", "Welcome aboard!", "BEGINNER"),
    ("Use [x] or [[y]] then[[SOPHISTICATION:BEGINNER]]  \n", "Use [x] or [[y]] then", "BEGINNER"),
    (
        "A [[SOPHISTICATION:BEGINNER]] b [[sophistication:ADVANCED]]",
        "A b",
        "ADVANCED",
    ),
    ("Half [[SOPHISTIC and then [[SOPHISTICATION:INTERMEDIATE]]", "Half [[SOPHISTIC and then", "INTERMEDIATE"),
]


def run_filter(pieces: list[str]) -> tuple[str, str | None]:
    marker_filter = MarkerFilter()
    shown = "".join(marker_filter.feed(piece) for piece in pieces) + marker_filter.finish()
    return shown, marker_filter.level


def partitions(text: str, parts: int):
    for cuts in itertools.combinations(range(1, len(text)), parts - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize(("reply", "shown", "level"), REPLIES)
def test_marker_removed_however_the_reply_is_split(reply, shown, level):
    assert strip_marker(reply) == (shown, level)
    splits = [[reply], list(reply), *partitions(reply, 2)]
    if len(reply) <= 60:
        splits.extend(partitions(reply, 3))
    for pieces in splits:
        assert run_filter(pieces) == (shown, level), pieces


def test_marker_never_visible_in_any_prefix_of_the_output():
    reply = "Nice. What equipment do you have? [[SOPHISTICATION:ADVANCED]]"
    for pieces in [list(reply), *partitions(reply, 3)]:
        marker_filter = MarkerFilter()
        shown = ""
        for piece in pieces:
            shown += marker_filter.feed(piece)
            assert "[" not in shown
        assert shown + marker_filter.finish() == "Nice. What equipment do you have?"


@pytest.mark.parametrize(
    "text",
    ["Plain reply with no marker.", "Ends with space \n\n", "  leading", "A [link] and [[brackets]]", "[[SOPHIST", ""],
)
def test_no_marker_leaves_the_text_unchanged(text):
    assert strip_marker(text) == (text, None)
    assert run_filter(list(text)) == (text, None)


def test_holds_back_only_what_could_be_a_marker():
    marker_filter = MarkerFilter()
    assert marker_filter.feed("Try [") == "Try"
    assert marker_filter.feed("x]") == " [x]"  # not a marker: released at once
    assert marker_filter.feed(" then [[SOPH") == " then"  # the space waits too: a marker takes it away
    assert marker_filter.feed("IE]]") == " [[SOPHIE]]"
    assert marker_filter.feed(" [[sophistication: inter") == ""
    assert marker_filter.feed("mediate]] ok") == " ok"
    assert marker_filter.level == "INTERMEDIATE"
    assert marker_filter.finish() == ""


def test_finish_releases_an_unfinished_marker():
    marker_filter = MarkerFilter()
    assert marker_filter.feed("Cut off [[SOPHISTICATION:ADV") == "Cut off"
    assert marker_filter.finish() == " [[SOPHISTICATION:ADV"
    assert marker_filter.level is None


def test_invalid_level_is_not_a_marker():
    assert strip_marker("x [[SOPHISTICATION:EXPERT]]") == ("x [[SOPHISTICATION:EXPERT]]", None)


# --- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("I run my training off RPE and plan a deload every fourth week.", "ADVANCED"),
        ("My squat 1RM is 180 kg and I like block periodization.", "ADVANCED"),
        ("Tempo runs on Tuesdays, and my VO2max is 55.", "ADVANCED"),
        ("I follow a push/pull/legs split, 3 sets of 8 reps.", "INTERMEDIATE"),
        ("Hit a new PR last month; my 5k time is 24 minutes.", "INTERMEDIATE"),
        ("I've never really trained before.", "BEGINNER"),
        ("I'm new to the gym, how many sets should I do?", "BEGINNER"),
        ("Just starting out!", "BEGINNER"),
        ("I've never heard of RPE.", "BEGINNER"),
        ("Beginner here, but my friend talks about RPE and deloads.", "ADVANCED"),
        ("I like mornings and have a bike.", None),
        ("Preset menus and represent", None),  # no word-part matches
    ],
)
def test_signals_level(answer, expected):
    assert signals_level(answer) == expected


@pytest.mark.parametrize(
    ("previous", "reported", "signals", "expected"),
    [
        ("BEGINNER", "ADVANCED", None, "ADVANCED"),  # rising has no limit
        ("BEGINNER", None, "INTERMEDIATE", "INTERMEDIATE"),
        ("INTERMEDIATE", None, None, "INTERMEDIATE"),
        ("INTERMEDIATE", "BEGINNER", "ADVANCED", "BEGINNER"),  # the model's report wins
        ("ADVANCED", "BEGINNER", None, "INTERMEDIATE"),  # at most one step down per answer
        ("ADVANCED", None, "BEGINNER", "INTERMEDIATE"),
        ("INTERMEDIATE", "BEGINNER", None, "BEGINNER"),
        ("ADVANCED", "ADVANCED", "BEGINNER", "ADVANCED"),
    ],
)
def test_combine(previous, reported, signals, expected):
    assert combine(previous, reported, signals) == expected


# --- prompts -------------------------------------------------------------------------------------


def test_static_prompt_is_identical_across_turns_and_asks_for_the_marker():
    first = interview_request("model", QUESTIONS[0], QUESTIONS[1], [], "BEGINNER", "Get stronger")
    later = interview_request(
        "model",
        QUESTIONS[5],
        None,
        [(q.text, "an answer") for q in QUESTIONS[:5]],
        "ADVANCED",
        "Five days",
    )
    assert first.system.static == later.system.static == STATIC_PROMPT
    assert MARKER_INSTRUCTION in first.system.static
    assert first.system.cache
    assert first.system.dynamic != later.system.dynamic
    assert QUESTIONS[0].text in first.system.dynamic
    assert QUESTIONS[1].text in first.system.dynamic
    assert "last question" in later.system.dynamic
    assert "ADVANCED" in later.system.dynamic
    assert MARKER_INSTRUCTION not in first.system.dynamic


def test_marker_instruction_shows_a_marker_the_filter_removes():
    assert "[[SOPHISTICATION:" in MARKER_INSTRUCTION
    assert strip_marker("ok [[SOPHISTICATION:INTERMEDIATE]]") == ("ok", "INTERMEDIATE")


@pytest.mark.parametrize("past", [0, 1, 4])
def test_messages_alternate_starting_with_the_user_and_end_with_the_answer(past):
    history = [(QUESTIONS[i].text, f"answer {i}") for i in range(past)]
    request = interview_request("model-x", QUESTIONS[past], QUESTIONS[past + 1], history, "BEGINNER", " my answer ")
    roles = [m.role for m in request.messages]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert request.messages[-1].role == "user"
    assert request.messages[-1].text == "my answer"
    assert request.messages[-2].text == QUESTIONS[past].text
    assert len(request.messages) == 2 * past + 3
    assert [m.text for m in request.messages[1 : 2 * past + 1 : 2]] == [q for q, _ in history]
    assert request.model_id == "model-x"
    assert all(m.text.strip() for m in request.messages)
