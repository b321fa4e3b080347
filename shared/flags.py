"""Feature flags: is streaming on, and for which share of users.

The values live in AWS AppConfig (a freeform profile in Powertools Feature Flags' schema), so an
operator turns streaming off, or changes the rollout, with one AppConfig deployment and no function
update: each container re-reads them at most every `FLAGS_MAX_AGE_SECONDS`. Without AppConfig names in
the environment (`sam local invoke`, unit tests) `STREAMING_ENABLED` / `STREAMING_PERCENTAGE` are the
values. A failed read never fails a turn: the last good values stand (at first, those defaults), with
a warning, until the next read.

A user's bucket is a stable hash of their id, so the same user always gets the same answer and
raising the percentage only ever adds users. The percentage is a plain number (a non-boolean
feature), not a Powertools rule, so `/config` can report it as it is.

Powertools' feature flags and the AppConfig client are imported only when AppConfig is configured,
on the first read: a function without it pays nothing at import.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.aws_clients import ClientLimits, make_client
from shared.settings import FlagSettings, settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.feature_flags import FeatureFlags

# One read is small and, when it fails, the last values stand: no retry, short timeouts (a session
# start and a poll on a container's first read, one poll afterwards).
APPCONFIG = ClientLimits(connect_timeout=1.0, read_timeout=1.0, attempts=1)
# AppConfig Data's least RequiredMinimumPollIntervalInSeconds (botocore refuses less before sending).
MIN_POLL_INTERVAL_SECONDS = 15
STREAMING_ENABLED = "streaming_enabled"  # boolean feature
STREAMING_PERCENTAGE = "streaming_percentage"  # non-boolean feature: a whole number 0..100


class FlagsUnavailable(RuntimeError):
    """The store could not give valid values this time; the caller keeps what it had."""


@dataclass(frozen=True)
class FlagValues:
    streaming_enabled: bool
    streaming_percentage: int

    @classmethod
    def checked(cls, enabled: Any, percentage: Any) -> FlagValues:
        """Values as read from a store: a wrong type or range is refused, never coerced."""
        if not isinstance(enabled, bool):
            raise FlagsUnavailable(f"{STREAMING_ENABLED} must be true or false, not {enabled!r}")
        if isinstance(percentage, float) and percentage.is_integer():
            percentage = int(percentage)  # 50.0 is an integer to JSON Schema since draft-06
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            raise FlagsUnavailable(f"{STREAMING_PERCENTAGE} must be a whole number 0 to 100, not {percentage!r}")
        return cls(enabled, percentage)

    def document(self) -> dict[str, Any]:
        """The AppConfig document in Powertools Feature Flags' schema (what the CDK deploys first)."""
        return {
            STREAMING_ENABLED: {"default": self.streaming_enabled},
            STREAMING_PERCENTAGE: {"default": self.streaming_percentage, "boolean_type": False},
        }


# The profile's JSON Schema validator (infra/feature_flags.py): a bad document is refused at
# `start-deployment`, before any function sees it. Draft-04, the version AppConfig's validators read.
DOCUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": [STREAMING_ENABLED, STREAMING_PERCENTAGE],
    "properties": {
        STREAMING_ENABLED: {
            "type": "object",
            "required": ["default"],
            "properties": {"default": {"type": "boolean"}},
        },
        STREAMING_PERCENTAGE: {
            "type": "object",
            "required": ["default", "boolean_type"],
            "properties": {
                "default": {"type": "integer", "minimum": 0, "maximum": 100},
                "boolean_type": {"enum": [False]},
            },
        },
    },
}


class FlagSource(Protocol):
    def read(self, last: FlagValues) -> FlagValues: ...


class AppConfigSource:
    """The flags through Powertools' `FeatureFlags` on an `AppConfigStore` (AppConfig Data's sessions).

    The session asks AppConfig for a poll interval equal to our cache age (deployed ages are at least
    AppConfig's 15 s minimum): AppConfig refuses a poll sooner than the session's interval ("Request too
    early"; its default is 60 s), and Powertools' store does not pass one itself. After any failure the
    next read starts a new session, so a stale or rejected token cannot keep the flags stuck.
    """

    def __init__(self, application: str, environment: str, profile: str, max_age_seconds: int) -> None:
        self.application = application
        self.environment = environment
        self.profile = profile
        self.max_age_seconds = max_age_seconds
        self._flags: FeatureFlags | None = None
        self._client: Any = None  # the AppConfig Data client under the flags

    def prepare(self) -> None:
        """Import Powertools' feature flags and make the client, without a request: what the first read needs."""
        self._flags = self._flags or self._feature_flags()

    def close_connections(self) -> None:
        """Close the client's open connections; it opens new ones when it next reads."""
        if self._client is not None:
            self._client.close()

    def read(self, last: FlagValues) -> FlagValues:
        try:
            flags = self._flags or self._feature_flags()
            self._flags = flags
            flags.get_configuration()  # fetch and validate once; the evaluations below use its cache
            return FlagValues.checked(
                flags.evaluate(name=STREAMING_ENABLED, default=last.streaming_enabled),
                flags.evaluate(name=STREAMING_PERCENTAGE, default=last.streaming_percentage),
            )
        except Exception as exc:  # any failure of the store (network, service, schema) keeps the last values
            self._flags = None
            raise FlagsUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _feature_flags(self) -> FeatureFlags:
        from aws_lambda_powertools.utilities.feature_flags import AppConfigStore, FeatureFlags

        client = self._client = make_client("appconfigdata", APPCONFIG.botocore_config())
        interval = max(MIN_POLL_INTERVAL_SECONDS, self.max_age_seconds)

        def poll_interval(params: dict[str, Any], **_: Any) -> None:
            params.setdefault("RequiredMinimumPollIntervalInSeconds", interval)

        client.meta.events.register("provide-client-params.appconfigdata.StartConfigurationSession", poll_interval)
        store = AppConfigStore(
            environment=self.environment,
            application=self.application,
            name=self.profile,
            max_age=self.max_age_seconds,
            boto3_client=client,
        )
        return FeatureFlags(store=store)


class CachedFlags:
    """The values a turn reads: from the source at most every `max_age_seconds`, else from memory.

    A failed read is not retried before the age is up either, so a store that is down costs one
    bounded call per container and period, not one per turn.
    """

    def __init__(
        self,
        defaults: FlagValues,
        source: FlagSource | None,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.values = defaults
        self.source = source
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._warn = warn or _warn
        self._fresh_until = float("-inf")
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """At init: the first read, so that the first turn reads from memory; then no connection is left open,
        since a socket must not cross a fork (Managed Instances' `processes` workers fork after init)."""
        if isinstance(self.source, AppConfigSource):
            self.source.prepare()
            self.current()
            self.source.close_connections()

    def current(self) -> FlagValues:
        if self.source is None or self._clock() < self._fresh_until:
            return self.values
        with self._lock:  # one read at a time when turns run on threads (Managed Instances)
            if self._clock() >= self._fresh_until:
                try:
                    self.values = self.source.read(self.values)
                except FlagsUnavailable as exc:
                    self._warn(f"feature flags unavailable, keeping {self.values}: {exc}")
                self._fresh_until = self._clock() + self.max_age_seconds
        return self.values


def cached_flags(found: FlagSettings) -> CachedFlags:
    """The function's flags from its settings: AppConfig when its names are set, else the defaults."""
    defaults = FlagValues(found.streaming_enabled, found.streaming_percentage)
    source = None
    if found.appconfig_application:
        source = AppConfigSource(
            found.appconfig_application,
            found.appconfig_environment,
            found.appconfig_flags_profile,
            found.flags_max_age_seconds,
        )
    return CachedFlags(defaults, source, found.flags_max_age_seconds)


def _warn(message: str) -> None:
    from shared.observability import logger  # Powertools' logger, only once something goes wrong

    logger.warning(message)


_current: tuple[FlagSettings, CachedFlags] | None = None


def current_flags_source() -> CachedFlags:
    """This container's flags (rebuilt only when its settings were reloaded, as tests do)."""
    global _current
    found = settings(FlagSettings)
    if _current is None or _current[0] is not found:
        _current = (found, cached_flags(found))
    return _current[1]


def current_flags() -> FlagValues:
    return current_flags_source().current()


def prepare_flags() -> None:
    """At init: this container's flags read once, so the first turn finds them in memory. A read that fails
    keeps the defaults, as it would on a turn."""
    current_flags_source().prepare()


def streaming_enabled() -> bool:
    return current_flags().streaming_enabled


def streaming_percentage() -> int:
    return current_flags().streaming_percentage


def user_bucket(user_id: str) -> int:
    """0..99, the same for a user forever."""
    return int.from_bytes(hashlib.sha256(user_id.encode("utf-8")).digest()[:4], "big") % 100


def use_streaming(user_id: str, values: FlagValues | None = None) -> bool:
    """Whether this user streams under `values` (default: the current flags)."""
    values = values or current_flags()
    return values.streaming_enabled and user_bucket(user_id) < values.streaming_percentage
