"""The trained models that ship inside the package, and their model card figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parent / "models"
BUNDLED = ("standard", "micro", "seed-cnn")


class ModelNotFound(FileNotFoundError):  # noqa: N818 (public name, used by callers)
    """A bundled model name that does not exist."""


def bundled_model(name: str = "standard") -> Path:
    """Path of the bundled int8 model ``name`` (``standard`` for the Pi, ``micro`` for microcontrollers)."""
    path = MODEL_DIR / f"{name}_int8.tflite"
    if name not in BUNDLED or not path.is_file():
        raise ModelNotFound(f"no bundled model {name!r}: choose from {', '.join(BUNDLED)}")
    return path


def model_card(name: str = "standard") -> dict[str, Any]:
    """The measured figures recorded for a bundled model (accuracy, size, arena, recipe, commit)."""
    path = MODEL_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelNotFound(f"no model card for {name!r}")
    card: dict[str, Any] = json.loads(path.read_text())
    return card


def resolve_model(model: str | Path | None, default: str = "standard") -> Path:
    """A model path as given, a bundled model by name, or the default bundled model."""
    if model is None:
        return bundled_model(default)
    if str(model) in BUNDLED:
        return bundled_model(str(model))
    return Path(model)
