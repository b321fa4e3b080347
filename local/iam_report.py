"""The table function -> actions its recorded calls used -> actions its synthesized role grants.

Printed from a test run's call log, so what the README shows is what the code did, not what we believe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from functions.catalog import FunctionDefinition
from local.iam_gate import AwsCall


def granted_actions(statements: Iterable[Mapping[str, Any]]) -> set[str]:
    """Allowed actions of a role, leaving out what Lambda itself uses the role for (logs, tracing)."""
    found: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement["Action"]
        found |= {actions} if isinstance(actions, str) else set(actions)
    return {action for action in found if not action.startswith(("logs:", "xray:"))}


def used_actions(calls: Iterable[AwsCall], function_name: str) -> set[str]:
    return {call.action for call in calls if call.caller == function_name and call.verdict == "allowed"}


def iam_table(
    calls: Sequence[AwsCall],
    policies: Mapping[str, list[dict[str, Any]]],
    definitions: Sequence[FunctionDefinition],
    name_prefix: str = "coach-stream",
) -> str:
    """A Markdown table of the catalog's functions (test-only functions left out)."""
    rows = ["| function | actions used (recorded) | actions granted | granted, never used |", "|---|---|---|---|"]
    for name in sorted(policies):
        if not any(name == f"{name_prefix}-{d.name}" and d.folder for d in definitions):
            continue
        used = used_actions(calls, name)
        granted = granted_actions(policies[name])
        rows.append(
            f"| {name} | {', '.join(sorted(used)) or '-'} | {', '.join(sorted(granted)) or '-'} "
            f"| {', '.join(sorted(granted - used)) or '-'} |"
        )
    return "\n".join(rows)


def requests_per_invocation(
    calls: Iterable[AwsCall], client_of: Callable[[AwsCall], str] = lambda call: call.service
) -> dict[str, dict[str, int]]:
    """Per function, the most requests one invocation (one trace root) sent to each client (`client_of` a
    call; by default its service)."""
    requests: dict[tuple[str, str, str], set[str]] = {}
    for call in calls:
        if call.trace:
            requests.setdefault((call.caller, call.trace, client_of(call)), set()).add(call.request_id)
    most: dict[str, dict[str, int]] = {}
    for (caller, _, service), ids in requests.items():
        by_service = most.setdefault(caller, {})
        by_service[service] = max(by_service.get(service, 0), len(ids))
    return most
