"""The AppConfig profile of the templates, hosted locally as a JSON file a person may edit.

The application, environment and profile names, the first version's content and the profile's JSON Schema
validator are read from the synthesized templates (`infra/feature_flags.py`), never restated here. The
file (`.local/feature-flags.json`) plays the hosted configuration store with its latest deployment: an edit
takes effect as a deployment would, and an edit the profile's validator refuses is not served (AppConfig
refuses it at `start-deployment`), so the last valid document stands.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from shared.flags import STREAMING_ENABLED, STREAMING_PERCENTAGE

FLAGS_FILE = "feature-flags.json"


class ProfileError(ValueError):
    """The templates or a document do not give what the local profile needs."""


def local_id(name: str) -> str:
    """A stand-in for an AppConfig id (7 lower-case characters), stable for a name: the local value of a
    template's `Ref` to the resource, so a role's policy names the same profile the double serves."""
    return hashlib.sha256(name.encode()).hexdigest()[:7]


@dataclass(frozen=True)
class LocalProfile:
    application: str
    environment: str
    profile: str
    content: str  # the first hosted version, as deployed with the stack
    content_type: str
    schema: dict[str, Any] | None  # the profile's JSON Schema validator, if it has one

    @classmethod
    def from_templates(cls, templates: Mapping[str, Mapping[str, Any]]) -> LocalProfile | None:
        """The one hosted profile of the templates, or None when they define no AppConfig application."""
        resources = {lid: r for t in templates.values() for lid, r in t.get("Resources", {}).items()}

        def of_type(type_: str) -> list[tuple[str, dict[str, Any]]]:
            return [(lid, r["Properties"]) for lid, r in resources.items() if r["Type"] == type_]

        applications = of_type("AWS::AppConfig::Application")
        if not applications:
            return None
        found = [
            applications,
            of_type("AWS::AppConfig::Environment"),
            of_type("AWS::AppConfig::ConfigurationProfile"),
            of_type("AWS::AppConfig::HostedConfigurationVersion"),
        ]
        if any(len(items) != 1 for items in found):
            raise ProfileError("the local stack serves one AppConfig application, environment, profile and version")
        (_, app), (_, env), (_, profile), (_, version) = (items[0] for items in found)
        validators = [v for v in profile.get("Validators", []) if v.get("Type") == "JSON_SCHEMA"]
        return cls(
            application=_literal(app["Name"]),
            environment=_literal(env["Name"]),
            profile=_literal(profile["Name"]),
            content=_literal(version["Content"]),
            content_type=_literal(version.get("ContentType", "application/json")),
            schema=json.loads(validators[0]["Content"]) if validators else None,
        )

    def matches(self, application: str, environment: str, profile: str) -> bool:
        """AppConfig Data takes a name or an id for each."""
        return (
            application in (self.application, local_id(self.application))
            and environment in (self.environment, local_id(self.environment))
            and profile in (self.profile, local_id(self.profile))
        )

    def validate(self, content: bytes) -> None:
        """What AppConfig checks at `start-deployment`: JSON, and the profile's schema."""
        try:
            document = json.loads(content)
        except ValueError as exc:
            raise ProfileError(f"not JSON: {exc}") from None
        if self.schema is not None:
            try:
                jsonschema.validate(document, self.schema)
            except jsonschema.ValidationError as exc:
                raise ProfileError(f"refused by the profile's validator: {exc.message}") from None


class FlagsFile:
    """The local profile's latest deployed document: a file, read on every poll."""

    def __init__(self, path: Path, profile: LocalProfile) -> None:
        self.path = path
        self.profile = profile
        self._last_valid = profile.content.encode()

    def deploy_initial(self) -> None:
        """The stack's own first version, as a deploy of the templates would deploy it."""
        write_atomically(self.path, self.profile.content.encode())
        self._last_valid = self.profile.content.encode()

    def current(self) -> bytes:
        """The file's document if the profile's validator accepts it, else the last one it accepted."""
        try:
            content = self.path.read_bytes()
            self.profile.validate(content)
        except (OSError, ProfileError):
            return self._last_valid
        self._last_valid = content
        return content


def set_flags(path: Path, *, streaming: bool | None = None, percentage: int | None = None) -> dict[str, Any]:
    """`python -m local flags`: change the served document, keeping the rest of it; returns it."""
    if not path.exists():
        raise ProfileError(f"{path} does not exist: start the local stack first (make dev)")
    document = json.loads(path.read_text())
    if streaming is not None:
        document.setdefault(STREAMING_ENABLED, {})["default"] = streaming
    if percentage is not None:
        if not 0 <= percentage <= 100:
            raise ProfileError(f"the percentage is 0 to 100, not {percentage}")
        document.setdefault(STREAMING_PERCENTAGE, {"boolean_type": False})["default"] = percentage
    write_atomically(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return document


def write_atomically(path: Path, content: bytes) -> None:
    """A poll never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    Path(temporary).replace(path)


def _literal(value: Any) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"an AppConfig name or content must be a literal in the template, not {value!r}")
    return value


_ID_ATTRIBUTES = {
    "AWS::AppConfig::Application": "ApplicationId",
    "AWS::AppConfig::Environment": "EnvironmentId",
    "AWS::AppConfig::ConfigurationProfile": "ConfigurationProfileId",
}


def local_reference(resource_type: str, properties: Mapping[str, Any], attribute: str) -> str:
    """The local value of a `Ref` (or id attribute) of an AppConfig resource: the id its name stands for."""
    if resource_type not in _ID_ATTRIBUTES or attribute not in ("Ref", _ID_ATTRIBUTES[resource_type]):
        raise ProfileError(f"{resource_type}.{attribute} has no local value")
    return local_id(_literal(properties["Name"]))


def flags_command(state_dir: Path, streaming: str | None, percentage: int | None) -> int:
    """`python -m local flags [--streaming on|off] [--percentage N]`: print, or change then print, what the
    local AppConfig serves; running functions see it within their FLAGS_MAX_AGE_SECONDS."""
    path = state_dir / FLAGS_FILE
    try:
        if streaming is None and percentage is None:
            if not path.exists():
                raise ProfileError(f"{path} does not exist: start the local stack first (make dev)")
            document = json.loads(path.read_text())
        else:
            document = set_flags(
                path, streaming=None if streaming is None else streaming == "on", percentage=percentage
            )
    except ProfileError as exc:
        print(f"local flags: {exc}", file=sys.stderr)
        return 2
    enabled = document.get(STREAMING_ENABLED, {}).get("default")
    share = document.get(STREAMING_PERCENTAGE, {}).get("default")
    print(f"streaming {'on' if enabled else 'off'}, {share}% of users  ({path})")
    return 0
