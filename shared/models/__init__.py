"""The model port and the choice of its adapter.

Only the port is imported eagerly; the chosen adapter (and boto3 with it) is imported on the first
`create_model_port()`, so a function that never calls a model never pays for the import.
"""

from __future__ import annotations

from shared.models.dependencies import ModelDependencies
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
    "ModelDependencies",
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
    "create_model_port",
]


def create_model_port(settings: ModelSettings) -> ModelPort:
    """The adapter `settings.provider` names; the composition roots keep one per container."""
    if settings.provider == "openai":
        from shared.models.openai_compat import OpenAICompatibleModel

        return OpenAICompatibleModel(settings)
    from shared.models.bedrock import BedrockModel

    return BedrockModel(settings)
