"""Small readers for synthesized CloudFormation templates (plain dicts)."""

from __future__ import annotations

from typing import Any


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def function_by_name(template: dict[str, Any], function_name: str) -> tuple[str, dict[str, Any]]:
    for logical_id, resource in resources(template, "AWS::Lambda::Function").items():
        if resource["Properties"].get("FunctionName") == function_name:
            return logical_id, resource
    raise AssertionError(f"no function named {function_name}")


def refers_to(value: Any, logical_id: str) -> bool:
    """True when an intrinsic (Ref / GetAtt, at any depth) points at `logical_id`."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        getatt = value.get("Fn::GetAtt")
        if isinstance(getatt, list) and getatt and getatt[0] == logical_id:
            return True
        return any(refers_to(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(refers_to(v, logical_id) for v in value)
    return False


def flatten(value: Any) -> str:
    """An ARN-ish intrinsic as one string: Fn::Join parts concatenated, other intrinsics as <...>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(flatten(p) for p in parts)
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::ImportValue" in value:
            return f"<import:{flatten(value['Fn::ImportValue'])}>"
        if "Fn::GetAtt" in value:
            return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return f"<{value!r}>"


def statements_of(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Every policy statement attached to a role (inline policies and AWS::IAM::Policy resources)."""
    found: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if any(refers_to(r, role_logical_id) for r in policy["Properties"].get("Roles", [])):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    role = template["Resources"][role_logical_id]
    for inline in role["Properties"].get("Policies", []):
        found += inline["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
