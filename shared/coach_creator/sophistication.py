"""How sophisticated the athlete is: the model's own report, hidden from the user, and word signals.

The model reports a level by ending its reply with `[[SOPHISTICATION:LEVEL]]`. The reply streams
to the user as it is produced, so the marker must be cut out of a stream of deltas that may split
it anywhere: `MarkerFilter` holds back only what could still turn into a marker, and lets
everything else through at once. `strip_marker` is the same filter applied to a whole text, so the
streaming and the fallback paths can never disagree.

Removing a marker also removes the whitespace right before it, and whitespace it leaves at the very
start or end of the reply ("Great question!\\n\\n[[SOPHISTICATION:BEGINNER]]" shows as
"Great question!"). Text after a marker is kept; the last marker wins.
"""

from __future__ import annotations

import re
from typing import cast

from shared.coach_creator.questions import LEVELS, Level, level_rank

MARKER_EXAMPLE = "[[SOPHISTICATION:INTERMEDIATE]]"
MARKER_INSTRUCTION = (
    "After your reply, on its own final line, rate the athlete's training sophistication from everything "
    "they have said so far, using exactly this marker: [[SOPHISTICATION:LEVEL]] where LEVEL is one of "
    "BEGINNER, INTERMEDIATE or ADVANCED (for example " + MARKER_EXAMPLE + "). The marker is removed "
    "before the athlete sees your reply: never mention it or the rating in your text."
)

_WORD = "sophistication"
_MARKER_RE = re.compile(
    r"\[\[\s*" + _WORD + r"\s*:\s*(" + "|".join(LEVELS) + r")\s*\]\]",
    re.IGNORECASE | re.ASCII,  # ASCII: the prefix matcher below must accept every variant the regex does
)
_SPACE = " \t\n\r\f\v"  # what \s means under re.ASCII
# The marker's grammar as a sequence, for prefix matching (which `re` cannot do): optional whitespace
# (None) or a choice of words, matched without regard to case.
_GRAMMAR: tuple[tuple[str, ...] | None, ...] = (("[[",), None, (_WORD,), None, (":",), None, LEVELS, None, ("]]",))


def _could_be_marker(text: str, start: int) -> bool:
    """True if `text[start:]` is a marker or the beginning of one (case and whitespace tolerant)."""
    i, end = start, len(text)
    for part in _GRAMMAR:
        if i == end:
            return True
        if part is None:
            while i < end and text[i] in _SPACE:
                i += 1
            continue
        for word in part:
            piece = text[i : i + len(word)]
            if piece.isascii() and word.lower().startswith(piece.lower()):
                i += len(piece)
                break
        else:
            return False
    return True


def _trailing_space_start(text: str, end: int) -> int:
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


class MarkerFilter:
    """Removes sophistication markers from a stream of reply deltas, however the deltas split them.

    `feed` returns what is safe to show now. It holds back only a tail that could still become a
    marker (from a `[` that fits the marker's grammar so far) and trailing whitespace (a marker would
    take it away). `finish` returns what is still held once the stream is over.
    """

    def __init__(self) -> None:
        self._held = ""
        self._level: Level | None = None
        self._shown_any = False  # some visible text was released
        self._after_marker = False  # a marker was removed and nothing visible came after it yet

    @property
    def level(self) -> Level | None:
        """The level the last marker reported, None while no marker has been seen."""
        return self._level

    def feed(self, delta: str) -> str:
        buf = self._held + delta
        out: list[str] = []
        while match := _MARKER_RE.search(buf):
            out.append(self._release(buf[: _trailing_space_start(buf, match.start())]))
            self._level = cast(Level, match.group(1).upper())
            self._after_marker = True
            buf = buf[match.end() :]
        hold = next((i for i, ch in enumerate(buf) if ch == "[" and _could_be_marker(buf, i)), len(buf))
        hold = _trailing_space_start(buf, hold)
        out.append(self._release(buf[:hold]))
        self._held = buf[hold:]
        return "".join(out)

    def finish(self) -> str:
        """The held-back tail: an unfinished marker is just text; whitespace a marker left is dropped."""
        held, self._held = self._held, ""
        if not held.strip() and self._after_marker:
            return ""
        if self._after_marker and not self._shown_any:
            held = held.lstrip()
        return held

    def _release(self, text: str) -> str:
        """Visible text (empty, or ending in a non-space); drops the whitespace a leading marker left."""
        if not text:
            return ""
        if self._after_marker and not self._shown_any:
            text = text.lstrip()
        if text:
            self._shown_any = True
            self._after_marker = False
        return text


def strip_marker(text: str) -> tuple[str, Level | None]:
    """A whole reply without its markers, and the level reported (the fallback path's filter)."""
    marker_filter = MarkerFilter()
    shown = marker_filter.feed(text) + marker_filter.finish()
    return shown, marker_filter.level


def _terms(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])(?:" + "|".join(patterns) + r")(?![\w-])", re.IGNORECASE)


_ADVANCED = _terms(
    r"rpe",
    r"rir",
    r"1\s?rm",
    r"(?:one|1)[\s-]rep[\s-]max(?:es)?",
    r"periodi[sz](?:ation|ed|e)",
    r"(?:meso|micro|macro)cycles?",
    r"deloads?",
    r"hypertrophy blocks?",
    r"(?:strength|peaking|accumulation|intensification) blocks?",
    r"vo2\s?max",
    r"tempo runs?",
    r"lactate threshold",
    r"threshold (?:pace|runs?|intervals)",
    r"training max(?:es)?",
    r"(?:daily )?undulating",
    r"conjugate",
    r"autoregulat(?:ion|ed|e)",
)
_INTERMEDIATE = _terms(
    r"sets?",
    r"reps?",
    r"programs?",
    r"programmes?",
    r"splits?",
    r"prs?",
    r"pbs?",
    r"personal (?:records?|bests?)",
    r"(?:5|10)\s?k (?:time|pace|pb|pr)",
    r"push[\s/-]pull[\s/-]legs",
    r"ppl",
    r"upper[\s/-]lower",
    r"progressive overload",
    r"intervals",
)
_BEGINNER = _terms(
    r"never\s+(?:really\s+)?(?:trained|lifted|worked out|exercised|been|done|run|ran|used|followed|tried|heard)",
    r"new to",
    r"beginner",
    r"novice",
    r"just (?:starting|started|getting started)",
    r"first time",
    r"(?:haven't|have not|hasn't) (?:trained|exercised|worked out|lifted)",
)


def signals_level(answer: str) -> Level | None:
    """What the athlete's own words suggest, None when they say nothing telling.

    Advanced jargon is rare in a newcomer's mouth, so it wins, unless it is a single term next to a
    beginner statement ("never heard of RPE"). A beginner statement beats intermediate vocabulary,
    since newcomers talk about sets, reps and programs too ("I'm new to this, how many sets?").
    """
    advanced = len(_ADVANCED.findall(answer))
    beginner = bool(_BEGINNER.search(answer))
    if advanced >= 2 or (advanced == 1 and not beginner):
        return "ADVANCED"
    if beginner:
        return "BEGINNER"
    if _INTERMEDIATE.search(answer):
        return "INTERMEDIATE"
    return None


def combine(previous: Level, reported: Level | None, signals: Level | None) -> Level:
    """The level after one answer.

    The model's report wins when present (it has read the whole interview); else the signals in the
    answer; else the previous level. The result never drops more than one step below `previous` in
    one answer: one modest answer from an advanced lifter should not throw away what earlier
    answers showed, while a real misjudgement still corrects over two answers. Rising has no limit:
    an answer full of expert detail is strong evidence at once.
    """
    candidate = reported or signals or previous
    floor = LEVELS[max(0, level_rank(previous) - 1)]
    return candidate if level_rank(candidate) >= level_rank(floor) else floor
