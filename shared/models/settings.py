"""Model configuration, read from the environment once: provider, model ids, timeouts.

Model ids are inference profiles and change with regions and releases, so they live here and in
the CDK stack's environment, never in domain code. The endpoint is deliberately absent: boto3
reads `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` itself, which is how the local double is wired in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.aws_clients import ClientLimits
from shared.settings import ModelSection, SettingsError, settings

Provider = Literal["bedrock", "openai"]

DEFAULT_REPLY_MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
DEFAULT_SIDE_MODEL_ID = "us.amazon.nova-micro-v1:0"


@dataclass(frozen=True)
class ModelSettings:
    provider: Provider = "bedrock"
    reply_model_id: str = DEFAULT_REPLY_MODEL_ID
    side_model_id: str = DEFAULT_SIDE_MODEL_ID
    connect_timeout: float = 3.0
    read_timeout: float = 60.0  # per read: the longest silence tolerated between two chunks
    max_attempts: int = 3  # in total, the first attempt included
    openai_base_url: str = ""
    openai_api_key: str = ""

    @property
    def limits(self) -> ClientLimits:
        return ClientLimits(self.connect_timeout, self.read_timeout, self.max_attempts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ModelSettings:
        """From the function's settings (`shared.settings.ModelSection`), or from `environ` when given."""
        return cls.from_section(settings(ModelSection) if environ is None else ModelSection.from_env(environ))

    @classmethod
    def from_section(cls, section: ModelSection) -> ModelSettings:
        if section.model_provider == "openai" and not section.openai_base_url:
            raise SettingsError("MODEL_PROVIDER=openai needs OPENAI_BASE_URL")
        return cls(
            provider=section.model_provider,
            reply_model_id=section.model_id_reply,
            side_model_id=section.model_id_side,
            connect_timeout=section.model_connect_timeout_seconds,
            read_timeout=section.model_read_timeout_seconds,
            max_attempts=section.model_max_attempts,
            openai_base_url=section.openai_base_url.rstrip("/"),
            openai_api_key=section.openai_api_key,
        )
