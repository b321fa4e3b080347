"""The streaming flags' logic: stable buckets, a rollout that only adds users, defaults without AppConfig, and
a store that fails keeping the last good values without failing anything."""

from __future__ import annotations

import itertools

import pytest

from shared import flags
from shared.flags import CachedFlags, FlagsUnavailable, FlagValues, cached_flags, use_streaming, user_bucket
from shared.settings import FlagSettings, SettingsError
from tests.fakes.clock import SettableClock as Clock

USERS = [f"user-{n}" for n in range(1000)]


class ScriptedSource:
    """Answers each read with the next item: values, or an exception to raise."""

    def __init__(self, *answers: FlagValues | Exception) -> None:
        self.answers = list(answers)
        self.reads: list[FlagValues] = []  # the `last` each read was given

    def read(self, last: FlagValues) -> FlagValues:
        self.reads.append(last)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _cached(source: ScriptedSource, clock: Clock, warnings: list[str]) -> CachedFlags:
    return CachedFlags(FlagValues(True, 100), source, max_age_seconds=30, clock=clock, warn=warnings.append)


def test_a_users_bucket_is_stable_and_spread():
    assert [user_bucket(u) for u in USERS] == [user_bucket(u) for u in USERS]
    assert all(0 <= user_bucket(u) < 100 for u in USERS)
    assert 0.25 < sum(user_bucket(u) < 30 for u in USERS) / len(USERS) < 0.35


def test_raising_the_percentage_only_adds_users(set_setting):
    chosen = []
    for percentage in (0, 10, 35, 70, 100):
        set_setting("STREAMING_PERCENTAGE", str(percentage))
        chosen.append({u for u in USERS if use_streaming(u)})
    assert chosen[0] == set() and chosen[-1] == set(USERS)
    assert all(before <= after for before, after in itertools.pairwise(chosen))


def test_without_appconfig_the_environment_is_the_flags(set_setting):
    set_setting("STREAMING_ENABLED", "false")
    set_setting("STREAMING_PERCENTAGE", "40")
    assert (flags.streaming_enabled(), flags.streaming_percentage()) == (False, 40)
    assert cached_flags(FlagSettings.from_env({})).source is None


def test_appconfig_names_go_together():
    with pytest.raises(SettingsError, match="APPCONFIG_APPLICATION, APPCONFIG_ENVIRONMENT"):
        FlagSettings.from_env({"APPCONFIG_APPLICATION": "coach-stream", "APPCONFIG_ENVIRONMENT": "live"})
    with_all = FlagSettings.from_env(
        {"APPCONFIG_APPLICATION": "a", "APPCONFIG_ENVIRONMENT": "e", "APPCONFIG_FLAGS_PROFILE": "p"}
    )
    assert cached_flags(with_all).source is not None


def test_values_are_read_once_per_age():
    clock, warnings = Clock(0.0), []
    source = ScriptedSource(FlagValues(False, 20), FlagValues(True, 50))
    cached = _cached(source, clock, warnings)
    assert cached.current() == FlagValues(False, 20)
    clock.now = 29.9
    assert cached.current() == FlagValues(False, 20)
    assert len(source.reads) == 1
    clock.now = 30.0
    assert cached.current() == FlagValues(True, 50)
    assert len(source.reads) == 2 and warnings == []


def test_a_failed_read_keeps_the_last_good_values_warns_and_waits_an_age_before_trying_again():
    clock, warnings = Clock(0.0), []
    source = ScriptedSource(FlagValues(False, 20), FlagsUnavailable("service down"), FlagValues(True, 60))
    cached = _cached(source, clock, warnings)
    assert cached.current() == FlagValues(False, 20)
    clock.now = 30
    assert cached.current() == FlagValues(False, 20)  # last good, not the default
    assert len(warnings) == 1 and "service down" in warnings[0]
    clock.now = 59
    assert cached.current() == FlagValues(False, 20)
    assert len(source.reads) == 2  # no retry on every turn while it is down
    clock.now = 60
    assert cached.current() == FlagValues(True, 60)
    assert source.reads[-1] == FlagValues(False, 20)  # the source's defaults are the last good values


def test_a_first_read_that_fails_gives_the_environments_defaults():
    warnings: list[str] = []
    cached = _cached(ScriptedSource(FlagsUnavailable("no route")), Clock(0.0), warnings)
    assert cached.current() == FlagValues(True, 100)
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("enabled", "percentage"),
    [("yes", 10), (1, 10), (True, 101), (True, -1), (True, "50"), (True, 12.5), (True, True)],
)
def test_values_of_the_wrong_type_or_range_are_refused(enabled, percentage):
    with pytest.raises(FlagsUnavailable):
        FlagValues.checked(enabled, percentage)


def test_an_integral_float_is_a_percentage():
    assert FlagValues.checked(True, 50.0) == FlagValues(True, 50)


def test_the_document_is_powertools_feature_flags_schema():
    from aws_lambda_powertools.utilities.feature_flags import SchemaValidator

    document = FlagValues(False, 25).document()
    SchemaValidator(schema=document).validate()
    assert document["streaming_percentage"] == {"default": 25, "boolean_type": False}
