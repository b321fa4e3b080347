"""The part every model-calling composition root shares: the model port its settings name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from shared.models import ModelPort, ModelSettings, create_model_port
from shared.observability import observe
from shared.settings import ModelSection


class ModelParts(TypedDict):
    model: ModelPort
    model_settings: ModelSettings
    observe: Callable[[str, float], None]


def model_parts(settings: ModelSection) -> ModelParts:
    """`ModelDependencies`' fields, to spread into a flow's dependencies: `Flow(**model_parts(s), ...)`."""
    model_settings = ModelSettings.from_section(settings)
    return ModelParts(model=create_model_port(model_settings), model_settings=model_settings, observe=observe)
