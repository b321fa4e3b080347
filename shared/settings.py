"""Every function's configuration, read from its environment in one place and validated at cold start.

A function's settings model is a set of sections (table, models, auth, ...), each a pydantic model whose
field aliases are the environment variables. The handler module loads its model when it is imported, so a
missing or invalid variable fails the init (`/runtime/init/error`) with a message that names it, instead
of failing the first request or, worse, quietly using a default that only exists locally.

The CDK stack sets exactly the variables a function's model declares (`functions/catalog.py` names the
model), and the variable names of async targets and stream URLs come from the rules below, which the CDK
code uses too. Nothing else reads `os.environ` for configuration: modules ask `settings(Section)`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from shared.aws_clients import SDK_SERVICES

# Set in the template for the runtime rather than for Python code: Lambda runs the wrapper, the wrapper
# reads the switch (`STREAMING_ADAPTER=off` hands over to the stock bootstrap).
RUNTIME_VARIABLES = frozenset({"AWS_LAMBDA_EXEC_WRAPPER", "STREAMING_ADAPTER"})
# Read by the AWS SDK, never by our code: where a service is. Only the local stack sets them (and a
# `samLocal` synth declares them empty so `sam local invoke --env-vars` can fill them in).
# One a service the functions call: botocore's `AWS_ENDPOINT_URL_<service id>`, which for each of ours is its
# name in capitals, dashes as underscores (`tests/unit/test_sdk_services.py` checks it with botocore's ids).
SDK_ENDPOINT_VARIABLES = tuple(f"AWS_ENDPOINT_URL_{name.upper().replace('-', '_')}" for name in sorted(SDK_SERVICES))

S = TypeVar("S", bound="EnvSettings")


def function_name_variable(name: str) -> str:
    """`build-coach-from-session` -> `BUILD_COACH_FROM_SESSION_FUNCTION_NAME`: the variable that carries a
    function's deployed name to the functions invoking it."""
    return name.upper().replace("-", "_") + "_FUNCTION_NAME"


def url_variable(output_key: str) -> str:
    """`coachConversationStreamUrl` -> `COACH_CONVERSATION_STREAM_URL`, locally and deployed alike."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", output_key).upper()


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _origins(value: Any) -> Any:
    return tuple(origin.rstrip("/") for origin in _comma_list(value))


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]
Origins = Annotated[tuple[str, ...], BeforeValidator(_origins)]
NonEmpty = Annotated[str, Field(min_length=1)]


class SettingsError(ValueError):
    """A function's environment does not satisfy its settings model; the message names each variable."""


class EnvSettings(BaseModel):
    """Base of every section: fields are read by their alias, the environment variable's name."""

    # defer_build: a model's validator is built at its first validation, so a function builds only its own
    # model's (at load), not one for every section and every other function's model defined below.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True, defer_build=True)

    @classmethod
    def variables(cls) -> dict[str, bool]:
        """Every variable the model reads, and whether it is required."""
        return {str(field.alias): field.is_required() for field in cls.model_fields.values()}

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
        env = os.environ if environ is None else environ
        # An empty value counts as unset: `sam local invoke --env-vars` can only blank a variable out.
        values = {name: env[name] for name in cls.variables() if env.get(name, "").strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(_describe(error) for error in exc.errors())
            raise SettingsError(f"{cls.__name__}: {problems}") from None


def _describe(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"][:1])
    if error["type"] == "missing":
        return f"{name} is required"
    return f"{name}: {error['msg']} (got {str(error.get('input'))[:80]!r})"


# --- sections --------------------------------------------------------------------------------------


class ObservabilitySettings(EnvSettings):
    """Read by Powertools itself; validated here so a typo fails the init, not the first metric flush."""

    service_name: NonEmpty = Field(alias="POWERTOOLS_SERVICE_NAME")
    metrics_namespace: NonEmpty = Field(alias="POWERTOOLS_METRICS_NAMESPACE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field("INFO", alias="POWERTOOLS_LOG_LEVEL")


class TableSettings(EnvSettings):
    table_name: NonEmpty = Field(alias="COACH_TABLE_NAME")


class AuthSection(EnvSettings):
    """What a function trusts in a Cognito token (see `shared.http.auth.AuthSettings`)."""

    jwt_issuer: NonEmpty = Field(alias="JWT_ISSUER")
    jwt_audience: CommaList = Field(alias="JWT_AUDIENCE", min_length=1)
    jwt_token_use: CommaList = Field(("id",), alias="JWT_TOKEN_USE")
    jwt_user_id_claim: NonEmpty = Field("custom:user_id", alias="JWT_USER_ID_CLAIM")
    jwt_allow_sub_fallback: bool = Field(False, alias="JWT_ALLOW_SUB_FALLBACK")
    jwt_leeway_seconds: float = Field(30.0, alias="JWT_LEEWAY_SECONDS", ge=0)
    jwt_jwks_url: str = Field("", alias="JWT_JWKS_URL")


class WebSettings(EnvSettings):
    """The browser side: which origins may call, for the responses the function writes itself."""

    allowed_origins: Origins = Field((), alias="ALLOWED_ORIGINS")


class FlagSettings(EnvSettings):
    """The streaming flags' defaults, and where AppConfig keeps their live values (`shared/flags.py`):
    with the three AppConfig names set, AppConfig's values win; without them, these defaults are all."""

    streaming_enabled: bool = Field(True, alias="STREAMING_ENABLED")
    streaming_percentage: int = Field(100, alias="STREAMING_PERCENTAGE", ge=0, le=100)
    appconfig_application: str = Field("", alias="APPCONFIG_APPLICATION")
    appconfig_environment: str = Field("", alias="APPCONFIG_ENVIRONMENT")
    appconfig_flags_profile: str = Field("", alias="APPCONFIG_FLAGS_PROFILE")
    # How stale a container's flags may be; also the AppConfig session's poll interval (AWS: 15 s at least).
    flags_max_age_seconds: int = Field(30, alias="FLAGS_MAX_AGE_SECONDS", ge=1, le=3600)

    @model_validator(mode="after")
    def _all_appconfig_names_or_none(self) -> FlagSettings:
        names = (self.appconfig_application, self.appconfig_environment, self.appconfig_flags_profile)
        if any(names) and not all(names):
            raise ValueError(
                "APPCONFIG_APPLICATION, APPCONFIG_ENVIRONMENT and APPCONFIG_FLAGS_PROFILE go together: all or none"
            )
        return self


# A per-user limit's item keeps one slot per request of its window, all shifted in one update expression:
# DynamoDB's expression limits (4 KB, 300 operators or functions) hold to about this many.
RATE_LIMIT_MAX = 100


class RateLimitSettings(EnvSettings):
    """The writes budget per user and minute, shared by every turn (streamed or not) and every REST write."""

    rate_limit_per_minute: int = Field(20, alias="RATE_LIMIT_PER_MINUTE", ge=1, le=RATE_LIMIT_MAX)


class ReadRateLimitSettings(EnvSettings):
    """The REST reads budget per user and minute: apart from the writes, and higher."""

    rate_limit_reads_per_minute: int = Field(60, alias="RATE_LIMIT_READS_PER_MINUTE", ge=1, le=RATE_LIMIT_MAX)


class StreamSettings(EnvSettings):
    """A turn's own deadline: at most the budget, and never later than the margin before Lambda's, which
    covers what the turn still sends after it (`infra/time_budget.py` derives both)."""

    stream_time_budget_seconds: float = Field(alias="STREAM_TIME_BUDGET_SECONDS", gt=0)
    stream_deadline_margin_seconds: float = Field(alias="STREAM_DEADLINE_MARGIN_SECONDS", gt=0)


class SseSettings(EnvSettings):
    """The adapter's: a comment line after this long without an event keeps proxies from closing."""

    keep_alive_seconds: float = Field(15.0, alias="SSE_KEEP_ALIVE_SECONDS", gt=0)


class ModelSection(EnvSettings):
    """The model adapter's configuration (see `shared.models.settings.ModelSettings`)."""

    model_provider: Literal["bedrock", "openai"] = Field("bedrock", alias="MODEL_PROVIDER")
    model_id_reply: NonEmpty = Field(alias="MODEL_ID_REPLY")
    model_id_side: NonEmpty = Field(alias="MODEL_ID_SIDE")
    model_connect_timeout_seconds: float = Field(3.0, alias="MODEL_CONNECT_TIMEOUT_SECONDS", gt=0)
    model_read_timeout_seconds: float = Field(60.0, alias="MODEL_READ_TIMEOUT_SECONDS", gt=0)
    model_max_attempts: int = Field(3, alias="MODEL_MAX_ATTEMPTS", ge=1, le=10)
    openai_base_url: str = Field("", alias="OPENAI_BASE_URL")
    openai_api_key: str = Field("", alias="OPENAI_API_KEY")


class UploadsSettings(EnvSettings):
    uploads_bucket: NonEmpty = Field(alias="UPLOADS_BUCKET")


class EndpointSettings(EnvSettings):
    """Where the frontend streams and calls (`GET /config`)."""

    api_url: str = Field("", alias="API_URL")
    coach_conversation_stream_url: str = Field("", alias=url_variable("coachConversationStreamUrl"))
    coach_creator_stream_url: str = Field("", alias=url_variable("coachCreatorStreamUrl"))


# --- one model per function (functions/catalog.py names them) --------------------------------------


class TurnSettings(
    ObservabilitySettings,
    TableSettings,
    AuthSection,
    WebSettings,
    RateLimitSettings,
    StreamSettings,
    SseSettings,
    ModelSection,
):
    """What every turn (streamed or its fallback) needs before and while it talks to the model."""


class ConversationTurnSettings(TurnSettings, UploadsSettings):
    """A conversation turn (the fallback's as it is) hands nothing off itself: its post-turn job is written
    with the reply, and the table's stream delivers it (`functions/catalog.py`, `TableStreamSource`)."""


class CreatorTurnSettings(TurnSettings):
    """An interview answer (the fallback's as it is)."""

    build_coach_function_name: NonEmpty = Field(alias=function_name_variable("build-coach-from-session"))


class ConversationStreamSettings(ConversationTurnSettings, FlagSettings):
    """The streaming conversation: a turn, and the flags that turn streaming off. Only the streaming functions
    read the flags, so only they are told AppConfig's names and granted its reads; a fallback answers
    whatever the flags say (it is where clients go when streaming is off)."""


class CreatorStreamSettings(CreatorTurnSettings, FlagSettings):
    """The streaming interview: an answer, and the flags that turn streaming off."""


class ModelWorkerSettings(ObservabilitySettings, TableSettings, ModelSection):
    """Workers (post-turn work from the table's stream, the coach builder by async invoke): the table and a
    model, nothing else."""


class CoachBuildFailureSettings(ObservabilitySettings, TableSettings):
    """The coach build's on-failure destination (`mark-coach-build-failed`): the table and its metrics, no model."""


class CoachApiSettings(
    ObservabilitySettings,
    TableSettings,
    AuthSection,
    FlagSettings,
    EndpointSettings,
    RateLimitSettings,
    ReadRateLimitSettings,
):
    """The REST routes: the authorizer checks tokens, `/config` verifies an optional one itself; writes spend
    the turns' budget, reads their own."""


# --- the loaded settings of this process -----------------------------------------------------------

_loaded: dict[type[EnvSettings], EnvSettings] = {}


def load_settings(model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Validate the function's whole model (at import of its handler, so at cold start) and serve each of
    its sections from it from then on."""
    instance = model.from_env(environ)
    for section in model.__mro__:
        if isinstance(section, type) and issubclass(section, EnvSettings) and section is not EnvSettings:
            _loaded[section] = instance
    return instance


def settings(section: type[S]) -> S:
    """One section of this process's settings; read on first use when no model was loaded (tests)."""
    found = _loaded.get(section)
    if found is None:
        found = _loaded[section] = section.from_env()
    return found  # type: ignore[return-value]  # keyed by its own section type


def reset_settings() -> None:
    """Forget what was loaded (tests that change the environment)."""
    _loaded.clear()
