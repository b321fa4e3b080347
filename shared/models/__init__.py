"""The model port and the choice of its adapter.

Only the port is imported eagerly; the chosen adapter (and boto3 with it) is imported on the first
`get_model_port()`, so a function that never calls a model never pays for the import.
"""

from __future__ import annotations

import functools

from shared.models.port import (
    Image,
    Message,
    ModelError,
    ModelEvent,
    ModelPort,
    ModelReply,
    ModelRequest,
    ModelStreamInterrupted,
    ModelUnavailable,
    StreamEnd,
    SystemPrompt,
    TextDelta,
    Usage,
)
from shared.models.settings import ModelSettings

__all__ = [
    "Image",
    "Message",
    "ModelError",
    "ModelEvent",
    "ModelPort",
    "ModelReply",
    "ModelRequest",
    "ModelSettings",
    "ModelStreamInterrupted",
    "ModelUnavailable",
    "StreamEnd",
    "SystemPrompt",
    "TextDelta",
    "Usage",
    "get_model_port",
    "get_model_settings",
]


@functools.cache
def get_model_settings() -> ModelSettings:
    return ModelSettings.from_env()


@functools.cache
def get_model_port() -> ModelPort:
    """The adapter `MODEL_PROVIDER` names, created once per container (its client is reused)."""
    settings = get_model_settings()
    if settings.provider == "openai":
        from shared.models.openai_compat import OpenAICompatibleModel

        return OpenAICompatibleModel(settings)
    from shared.models.bedrock import BedrockModel

    return BedrockModel(settings)
