"""moto's DynamoDB giving the same answers for less CPU: the local table's latency is then DynamoDB's shape,
not moto's bookkeeping.

The local DynamoDB is one Python process: every request's CPU time delays every other request (the GIL), so
what moto spends on bookkeeping lands on a turn's path several times over. Measured per call on this machine,
a query of 20 messages cost 16 ms (3.5 ms for a `GetItem`), almost all of it moto's generic response
serializer walking each attribute value's ten possible members through its alias pickers; the rate limit's
update (20 `SET` actions) cost 23 ms, mostly two checks that look at the whole expression but that moto runs
again at every nested node (quadratic in the actions), and a re-parse of the same expression each time.

Three changes, each with the same result as moto's own code (tests compare them):

- `AttributeValue`s made only of strings, numbers, booleans, nulls, string and number sets, maps and lists
  of them are written as they are, which is what moto's serializer makes of them; anything else (binary)
  still goes through moto's serializer.
- The action count and overlapping paths checks of an update expression run on its root only: the root's
  clauses are all of the expression's, so every nested check is a subset of the root's.
- An update expression's syntax tree is parsed once per expression string (moto copies it before it
  validates or runs it, so the cached tree is never changed).

Plus one outside DynamoDB: moto's server lists its own package's folders (a `listdir` and an `isdir` for
each) on every request to find its backend; the list never changes while it runs.
"""

from __future__ import annotations

import functools
from typing import Any

from moto import backends
from moto.core import serialize
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import UpdateExpression
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

# Each maps a wire form to itself; a value of another kind (binary) is left to moto's serializer.
_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_SETS = {"SS", "NS"}
_NOT_PLAIN = object()


def plain_attribute_value(value: Any) -> Any:
    """The wire form of an `AttributeValue` already in it, or `_NOT_PLAIN` when moto's serializer must do it."""
    if not isinstance(value, dict) or len(value) != 1:
        return _NOT_PLAIN
    ((kind, inner),) = value.items()
    if kind in _SCALARS:
        return value if isinstance(inner, _SCALARS[kind]) else _NOT_PLAIN
    if kind in _SETS:
        return {kind: list(inner)} if all(isinstance(member, str) for member in inner) else _NOT_PLAIN
    if kind == "M" and isinstance(inner, dict):
        members = {name: plain_attribute_value(member) for name, member in inner.items()}
        return _NOT_PLAIN if _NOT_PLAIN in members.values() else {"M": members}
    if kind == "L" and isinstance(inner, list):
        elements = [plain_attribute_value(element) for element in inner]
        return _NOT_PLAIN if any(element is _NOT_PLAIN for element in elements) else {"L": elements}
    return _NOT_PLAIN


class DynamoDbJsonSerializer(serialize.JSONSerializer):
    """moto's JSON serializer, writing plain attribute values directly."""

    def _serialize_type_structure(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and key:
            plain = plain_attribute_value(value)
            if plain is not _NOT_PLAIN:
                serialized[key] = plain
                return
        super()._serialize_type_structure(serialized, value, shape, key)


class _OnTheRoot:
    """Runs a whole-expression check once, on the root, instead of at every nested node."""

    check: Any

    def traverse(self, node: Any) -> Any:
        if isinstance(node, UpdateExpression):
            return self.check(node)
        return super().traverse(node)  # type: ignore[misc]


class RootActionCountValidator(_OnTheRoot, validators.ActionCountValidator):  # type: ignore[misc]
    def check(self, node: Any) -> Any:
        return self.verify_action_counts(node)


class RootOverlappingPathsValidator(_OnTheRoot, validators.OverlappingPathsValidator):  # type: ignore[misc]
    def check(self, node: Any) -> Any:
        return self.check_for_overlapping_paths(node)


_ON_THE_ROOT = {
    validators.ActionCountValidator: lambda processor: RootActionCountValidator(),
    validators.OverlappingPathsValidator: lambda processor: RootOverlappingPathsValidator(
        processor.expression_attribute_names
    ),
}


def _root_checks(get_processors: Any) -> Any:
    @functools.wraps(get_processors)
    def processors(validator: Any) -> list[Any]:
        return [_ON_THE_ROOT.get(type(each), lambda same: same)(each) for each in get_processors(validator)]

    processors.__lean__ = True  # type: ignore[attr-defined]
    return processors


def make_moto_lean() -> None:
    """Idempotent: installs the three changes above in moto's DynamoDB and the backend list's cache."""
    for service in ("dynamodb", "dynamodbstreams"):
        serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault(service, {})["json"] = DynamoDbJsonSerializer
    get_processors = validators.UpdateExpressionValidator.get_ast_processors
    if not getattr(get_processors, "__lean__", False):
        validators.UpdateExpressionValidator.get_ast_processors = _root_checks(get_processors)  # type: ignore[method-assign]
    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    if not hasattr(make, "cache_info"):
        parse_once = functools.lru_cache(maxsize=512)(make)
        UpdateExpressionParser.make = classmethod(parse_once)  # type: ignore[method-assign,assignment]
    if not hasattr(backends.list_of_moto_modules, "cache_info"):
        listed = backends.list_of_moto_modules
        backends.list_of_moto_modules = functools.cache(lambda: tuple(listed()))  # type: ignore[assignment]
