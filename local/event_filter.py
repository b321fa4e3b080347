"""Lambda's event filtering (an event source mapping's `FilterCriteria`), as its documentation defines it.

A filter is a JSON pattern over the record as the function would receive it. Each key of the pattern must
match (AND); an object descends into the record's object of that key; a list holds the rules of that key,
of which one must match (OR), against the value or, when the value is a list, against any of its items.
A mapping's filters are alternatives: a record that matches one is sent, the others never reach the function.

Rules: a value (string, number, boolean; equal in type and value), `null` (the value is null), `""`;
`{"prefix": ...}`, `{"suffix": ...}` (each also with `{"equals-ignore-case": ...}` inside);
`{"equals-ignore-case": ...}`; `{"anything-but": value | [values] | {"prefix"|"suffix"|"equals-ignore-case": ...}}`;
`{"numeric": [op, number, ...]}` (`=`, `<`, `<=`, `>`, `>=`, pairs combine as a range); `{"exists": bool}`;
and `"$or": [pattern, ...]` beside other keys. A missing key matches only `{"exists": false}`. A rule this
module does not know raises `FilterError`, so a template using one fails loudly instead of filtering wrongly.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_MISSING = object()
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class FilterError(ValueError):
    """A filter pattern this emulation cannot judge (or that Lambda would refuse)."""


def parse_filter_criteria(criteria: Mapping[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """`FilterCriteria` as a template gives it (`{"Filters": [{"Pattern": "<json>"}]}`) -> the patterns."""
    patterns = []
    for item in (criteria or {}).get("Filters", []):
        pattern = json.loads(item["Pattern"]) if isinstance(item["Pattern"], str) else item["Pattern"]
        if not isinstance(pattern, dict):
            raise FilterError(f"a filter pattern is a JSON object, not {pattern!r}")
        check_pattern(pattern)
        patterns.append(pattern)
    return tuple(patterns)


def accepts(patterns: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Whether a mapping with these filters sends `record` to its function (no filter: every record)."""
    listed = list(patterns)
    return not listed or any(matches(pattern, record) for pattern in listed)


def check_pattern(pattern: Mapping[str, Any]) -> None:
    """Raise `FilterError` for anything `matches` would not judge, before any record comes: every rule is
    judged whatever the record, so judging an empty one checks them all."""
    matches(pattern, {})


def matches(pattern: Mapping[str, Any], record: Any) -> bool:
    """Whether `record` (a JSON value) matches one filter pattern."""
    matched = True
    for key, rule in pattern.items():
        if key == "$or":
            if not isinstance(rule, list) or len(rule) < 2:
                raise FilterError('"$or" takes a list of two or more patterns')
            found = any([matches(alternative, record) for alternative in rule])  # each one judged
        else:
            value = record.get(key, _MISSING) if isinstance(record, Mapping) else _MISSING
            found = _matches_key(key, rule, value)
        matched = matched and found  # every key is judged, so an unknown rule raises whatever the record
    return matched


def _matches_key(key: str, rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping):
        if value is _MISSING:
            return matches(rule, {})  # only `exists: false` below can match what is not there
        return isinstance(value, Mapping) and matches(rule, value)
    if not isinstance(rule, list) or not rule:
        raise FilterError(f"{key}: a rule is a non-empty list of values or conditions, or an object")
    candidates = value if isinstance(value, list) else [value]
    found = False
    for item in rule:
        if isinstance(item, Mapping) and "exists" in item:
            if not isinstance(item["exists"], bool) or len(item) != 1:
                raise FilterError(f'{key}: "exists" takes true or false')
            found = found or item["exists"] is (value is not _MISSING)
        elif value is not _MISSING:
            found = found or any(_match_value(item, candidate) for candidate in candidates)
        else:
            _match_value(item, None)  # still judged: an unknown rule raises
    return found


def _match_value(rule: Any, value: Any) -> bool:
    if rule is None or isinstance(rule, str | bool | int | float):
        return _equal(rule, value)
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise FilterError(f"a condition is one operator and its operand, not {rule!r}")
    ((name, operand),) = rule.items()
    if name in ("prefix", "suffix"):
        return _affix(name, operand, value)
    if name == "equals-ignore-case":
        return _ignoring_case(operand, value)
    if name == "anything-but":
        return _anything_but(operand, value)
    if name == "numeric":
        return _numeric(operand, value)
    raise FilterError(f"{name!r} is not a filter operator Lambda documents (or not one emulated here)")


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    if _is_number(expected) and _is_number(value):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _affix(name: str, operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping) and set(operand) == {"equals-ignore-case"}:
        text, fold = operand["equals-ignore-case"], True
    else:
        text, fold = operand, False
    if not isinstance(text, str):
        raise FilterError(f'"{name}" takes a string')
    if not isinstance(value, str):
        return False
    if fold:
        text, value = text.casefold(), value.casefold()
    return value.startswith(text) if name == "prefix" else value.endswith(text)


def _ignoring_case(operand: Any, value: Any) -> bool:
    options = operand if isinstance(operand, list) else [operand]
    if not all(isinstance(option, str) for option in options):
        raise FilterError('"equals-ignore-case" takes a string or a list of strings')
    return isinstance(value, str) and value.casefold() in {option.casefold() for option in options}


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        return not _match_value(dict(operand), value)
    options = operand if isinstance(operand, list) else [operand]
    if not options or not all(o is None or isinstance(o, str | int | float) for o in options):
        raise FilterError('"anything-but" takes a value, a list of values, or one prefix/suffix condition')
    return not any(_equal(option, value) for option in options)


def _numeric(operand: Any, value: Any) -> bool:
    if not isinstance(operand, list) or not operand or len(operand) % 2:
        raise FilterError('"numeric" takes operator and number pairs, e.g. [">", 0, "<=", 5]')
    pairs = list(zip(operand[::2], operand[1::2], strict=True))
    for op, bound in pairs:
        if op not in _NUMERIC or not _is_number(bound):
            raise FilterError(f'"numeric": {op!r} {bound!r} is not one of {sorted(_NUMERIC)} and a number')
    return _is_number(value) and all(_NUMERIC[op](float(value), float(bound)) for op, bound in pairs)
