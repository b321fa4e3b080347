"""Deployment settings: CDK context (`-c key=value` or cdk.json) first, then environment, then defaults.

Plain data, no CDK import, so it is cheap to test. The function-side names (MODEL_ID_REPLY, ...) are the
environment variables the functions read; the same names configure the synth, so a shell that runs the
local stack with a setting deploys with it too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from shared.models.settings import DEFAULT_REPLY_MODEL_ID, DEFAULT_SIDE_MODEL_ID
from shared.settings import RATE_LIMIT_MAX

ARCHITECTURES = ("arm64", "x86_64")
# Only the retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_STACK_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,39}$")
# Lambda Managed Instances (managedInstances=true), from the Lambda developer guide and API reference:
# the smallest function is 2 GB and 1 vCPU; memory per vCPU is 2, 4 or 8 GiB; at most 1600 concurrent
# requests per execution environment; Python 3.13 is the first Python runtime it runs.
MI_MIN_MEMORY_MB = 2048
MI_MAX_MEMORY_MB = 32768  # the largest MemorySize CloudFormation accepts
MI_MEMORY_GIB_PER_VCPU = (2, 4, 8)
MI_MAX_CONCURRENCY_LIMIT = 1600
# CapacityProviderScalingConfig.MaxVCpuCount: the API takes 2 and up, CDK's CapacityProvider 12 and up.
MI_MAX_VCPU_RANGE = (12, 15000)
MI_MIN_PYTHON = (3, 13)
# The flags' cache age is also the AppConfig session's RequiredMinimumPollIntervalInSeconds (AWS: 15 to 86400).
FLAGS_MAX_AGE_RANGE = (15, 3600)
# On Managed Instances each concurrent request runs in a process of its own (AWS's Python runtime, and the
# adapter's forked workers in shared/runtime/worker_pool.py). A turn function measures about 72 MB resident
# after import with its three clients, before any copy-on-write sharing; 128 MB per process leaves room for
# one turn's buffers. The execution environment's memory is sized from it.
MI_MEMORY_PER_PROCESS_MB = 128
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting that cannot be deployed: the message names the context key and its variable."""


@dataclass(frozen=True)
class Setting:
    context_key: str  # `cdk synth -c <key>=...`
    env_var: str  # the same setting from the environment


SETTINGS: dict[str, Setting] = {
    "stack_prefix": Setting("stackPrefix", "COACH_STACK_PREFIX"),
    "name_prefix": Setting("namePrefix", "COACH_NAME_PREFIX"),
    "architecture": Setting("architecture", "LAMBDA_ARCHITECTURE"),
    "model_id_reply": Setting("modelIdReply", "MODEL_ID_REPLY"),
    "model_id_side": Setting("modelIdSide", "MODEL_ID_SIDE"),
    "allowed_origins": Setting("allowedOrigins", "ALLOWED_ORIGINS"),
    "streaming_enabled": Setting("streamingEnabled", "STREAMING_ENABLED"),
    "streaming_percentage": Setting("streamingPercentage", "STREAMING_PERCENTAGE"),
    # Not FLAGS_MAX_AGE_SECONDS itself: locally that is a function override, below AppConfig's 15 s minimum.
    "flags_max_age_seconds": Setting("flagsMaxAgeSeconds", "COACH_FLAGS_MAX_AGE_SECONDS"),
    "rate_limit_per_minute": Setting("rateLimitPerMinute", "RATE_LIMIT_PER_MINUTE"),
    "rate_limit_reads_per_minute": Setting("rateLimitReadsPerMinute", "RATE_LIMIT_READS_PER_MINUTE"),
    "stream_time_budget_seconds": Setting("streamTimeBudgetSeconds", "STREAM_TIME_BUDGET_SECONDS"),
    "log_retention_days": Setting("logRetentionDays", "LOG_RETENTION_DAYS"),
    "api_throttle_rate": Setting("apiThrottleRate", "API_THROTTLE_RATE"),
    "api_throttle_burst": Setting("apiThrottleBurst", "API_THROTTLE_BURST"),
    "rest_streaming": Setting("restStreaming", "REST_STREAMING"),
    "self_sign_up": Setting("selfSignUp", "COGNITO_SELF_SIGN_UP"),
    "nag": Setting("nag", "CDK_NAG"),
    "sam_local": Setting("samLocal", "COACH_SAM_LOCAL"),
    "managed_instances": Setting("managedInstances", "MANAGED_INSTANCES"),
    "managed_instances_concurrency": Setting("managedInstancesConcurrency", "MANAGED_INSTANCES_CONCURRENCY"),
    "managed_instances_max_vcpu": Setting("managedInstancesMaxVCpu", "MANAGED_INSTANCES_MAX_VCPU"),
    "managed_instances_memory_per_vcpu": Setting("managedInstancesMemoryPerVCpu", "MANAGED_INSTANCES_MEMORY_PER_VCPU"),
}


@dataclass(frozen=True)
class InfraConfig:
    stack_prefix: str = "CoachStream"  # stacks: <prefix>Data, <prefix>Auth, <prefix>Api
    name_prefix: str = "coach-stream"  # function names: <prefix>-<catalog name>
    architecture: str = "arm64"
    model_id_reply: str = DEFAULT_REPLY_MODEL_ID
    model_id_side: str = DEFAULT_SIDE_MODEL_ID
    allowed_origins: tuple[str, ...] = ("http://localhost:3000", "http://127.0.0.1:3000")
    streaming_enabled: bool = True
    streaming_percentage: int = 100
    # How stale a function's streaming flags may be after an AppConfig deployment (infra/feature_flags.py).
    flags_max_age_seconds: int = 30
    rate_limit_per_minute: int = 20  # per user: turns and REST writes, in any 60 s (a sliding window)
    rate_limit_reads_per_minute: int = 60  # per user: REST reads, in any 60 s
    stream_time_budget_seconds: int = 240  # capped per turn function by its deadline margin (infra/time_budget.py)
    log_retention_days: int = 30
    api_throttle_rate: int = 50  # per stage (HTTP API $default, REST streaming), requests per second
    api_throttle_burst: int = 100
    rest_streaming: bool = True  # a REST API (responseTransferMode STREAM) in front of the streaming functions
    self_sign_up: bool = False  # users get custom:user_id from an administrator, never from themselves
    nag: bool = True  # run cdk-nag's AwsSolutions pack as a synth-time validation plugin
    sam_local: bool = False  # declare AWS_ENDPOINT_URL_* (empty) so `sam local invoke` can point them here
    # The streaming functions on Lambda Managed Instances (infra/managed_instances.py) instead of classic Lambda.
    managed_instances: bool = False
    # PerExecutionEnvironmentMaxConcurrency: Python processes per execution environment. A turn mostly waits
    # on the model's stream, so one vCPU carries many; 32 x 128 MB fills 1 vCPU at 4 GiB per vCPU exactly.
    managed_instances_concurrency: int = 32
    managed_instances_max_vcpu: int = 16  # the capacity provider's ceiling across all its instances
    # ExecutionEnvironmentMemoryGiBPerVCpu: AWS advises 4 or 8 for Python (one process per request); 4 is
    # the general-purpose instance families, and what 32 processes of 128 MB need per vCPU.
    managed_instances_memory_per_vcpu: int = 4

    python_version: str = "3.13"  # the managed runtime; bundling fetches wheels for it

    def __post_init__(self) -> None:
        def fail(name: str, message: str) -> None:
            setting = SETTINGS[name]
            raise ConfigError(f"{setting.context_key} ({setting.env_var}): {message}")

        if not _STACK_PREFIX.match(self.stack_prefix):
            fail("stack_prefix", "letters and digits, starting with a letter")
        if not _NAME_PREFIX.match(self.name_prefix):
            fail("name_prefix", "lower-case letters, digits and dashes, at most 24")
        if self.architecture not in ARCHITECTURES:
            fail("architecture", f"one of {', '.join(ARCHITECTURES)}, not {self.architecture!r}")
        for name in ("model_id_reply", "model_id_side"):
            if not re.fullmatch(r"[A-Za-z0-9.:/_-]{3,200}", getattr(self, name)):
                fail(name, f"not a model id or inference profile: {getattr(self, name)!r}")
        if not self.allowed_origins:
            fail("allowed_origins", "at least one origin")
        for origin in self.allowed_origins:
            if not _ORIGIN.match(origin):
                fail("allowed_origins", f"{origin!r} is not scheme://host[:port] (no wildcard, no path)")
        if not 0 <= self.streaming_percentage <= 100:
            fail("streaming_percentage", "0 to 100")
        low, high = FLAGS_MAX_AGE_RANGE
        if not low <= self.flags_max_age_seconds <= high:
            fail("flags_max_age_seconds", f"{low} to {high} seconds (it is AppConfig's poll interval too)")
        for name in ("rate_limit_per_minute", "rate_limit_reads_per_minute"):
            if not 1 <= getattr(self, name) <= RATE_LIMIT_MAX:
                fail(name, f"1 to {RATE_LIMIT_MAX} (one slot per request in the limit's item)")
        if not 10 <= self.stream_time_budget_seconds <= 900:
            fail("stream_time_budget_seconds", "10 to 900")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            fail("log_retention_days", f"one of {LOG_RETENTION_DAYS}")
        if self.api_throttle_rate < 1 or self.api_throttle_burst < 1:
            fail("api_throttle_rate", "rate and burst at least 1")
        self._check_managed_instances(fail)

    def _check_managed_instances(self, fail: Callable[[str, str], None]) -> None:
        """The Managed Instances settings are checked whether or not they are switched on: a value that would
        fail a deploy fails the synth that carries it."""
        most = min(MI_MAX_CONCURRENCY_LIMIT, MI_MAX_MEMORY_MB // MI_MEMORY_PER_PROCESS_MB)
        if not 1 <= self.managed_instances_concurrency <= most:
            fail(
                "managed_instances_concurrency",
                f"1 to {most} (each concurrent request is a Python process of {MI_MEMORY_PER_PROCESS_MB} MB, "
                f"in at most {MI_MAX_MEMORY_MB} MB), not {self.managed_instances_concurrency}",
            )
        if self.managed_instances_memory_per_vcpu not in MI_MEMORY_GIB_PER_VCPU:
            fail(
                "managed_instances_memory_per_vcpu",
                f"GiB per vCPU, one of {MI_MEMORY_GIB_PER_VCPU}, not {self.managed_instances_memory_per_vcpu}",
            )
        low, high = MI_MAX_VCPU_RANGE
        if not low <= self.managed_instances_max_vcpu <= high:
            fail("managed_instances_max_vcpu", f"{low} to {high}, not {self.managed_instances_max_vcpu}")
        version = tuple(int(part) for part in self.python_version.split(".")[:2])
        if self.managed_instances and version < MI_MIN_PYTHON:
            fail("managed_instances", f"Managed Instances run Python 3.13 and later, not {self.python_version}")

    @property
    def managed_instances_memory_mb(self) -> int:
        """An execution environment's memory: a process per concurrent request, at least the 2 GB minimum,
        rounded up to whole vCPUs at the configured ratio (the smallest function is 1 vCPU)."""
        vcpu_mb = self.managed_instances_memory_per_vcpu * 1024
        wanted = max(MI_MIN_MEMORY_MB, self.managed_instances_concurrency * MI_MEMORY_PER_PROCESS_MB)
        return -(-wanted // vcpu_mb) * vcpu_mb

    @property
    def managed_instances_vcpus(self) -> int:
        """The vCPUs of one execution environment."""
        return self.managed_instances_memory_mb // (self.managed_instances_memory_per_vcpu * 1024)

    @property
    def python_tag(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    @classmethod
    def load(
        cls,
        context: Callable[[str], Any] | Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> InfraConfig:
        """Read every setting: `context` is `node.try_get_context` or a dict; `environ` is os.environ
        unless given."""
        env = os.environ if environ is None else environ
        if context is None:
            lookup: Callable[[str], Any] = lambda _key: None  # noqa: E731
        elif callable(context):
            lookup = context
        else:
            lookup = context.get
        defaults = cls()
        values: dict[str, Any] = {}
        for item in fields(cls):
            setting = SETTINGS.get(item.name)
            if setting is None:
                continue
            raw = lookup(setting.context_key)
            if raw is None:
                raw = env.get(setting.env_var)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            values[item.name] = _parse(item.name, raw, getattr(defaults, item.name))
        return cls(**values)


def _parse(name: str, raw: Any, default: Any) -> Any:
    setting = SETTINGS[name]
    where = f"{setting.context_key} ({setting.env_var})"
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where}: true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{where}: a whole number, not {raw!r}") from None
    if isinstance(default, tuple):
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        return tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
    return str(raw).strip()
