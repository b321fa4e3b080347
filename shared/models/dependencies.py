"""The dependencies every model-calling flow shares; each flow adds the ports of its stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.models.port import ModelPort
from shared.models.settings import ModelSettings


@dataclass(frozen=True, kw_only=True)
class ModelDependencies:
    """The model port, its settings, and where metrics go; tests swap adapters, never monkeypatch."""

    model: ModelPort
    model_settings: ModelSettings
    observe: Callable[[str, float], None] = field(default=lambda name, value: None)
