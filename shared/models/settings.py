"""Model configuration, read from the environment once: provider, model ids, timeouts.

Model ids are inference profiles and change with regions and releases, so they live here and in
the CDK stack's environment, never in domain code. The endpoint is deliberately absent: boto3
reads `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` itself, which is how the local double is wired in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ModelSettings:
        env = os.environ if environ is None else environ
        provider = env.get("MODEL_PROVIDER", "bedrock").strip().lower() or "bedrock"
        if provider not in ("bedrock", "openai"):
            raise ValueError(f"MODEL_PROVIDER must be bedrock or openai, not {provider!r}")
        settings = cls(
            provider=provider,  # type: ignore[arg-type]  # checked just above
            reply_model_id=env.get("MODEL_ID_REPLY") or DEFAULT_REPLY_MODEL_ID,
            side_model_id=env.get("MODEL_ID_SIDE") or DEFAULT_SIDE_MODEL_ID,
            connect_timeout=float(env.get("MODEL_CONNECT_TIMEOUT_SECONDS") or cls.connect_timeout),
            read_timeout=float(env.get("MODEL_READ_TIMEOUT_SECONDS") or cls.read_timeout),
            max_attempts=int(env.get("MODEL_MAX_ATTEMPTS") or cls.max_attempts),
            openai_base_url=env.get("OPENAI_BASE_URL", "").rstrip("/"),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
        )
        if settings.provider == "openai" and not settings.openai_base_url:
            raise ValueError("MODEL_PROVIDER=openai needs OPENAI_BASE_URL")
        return settings
