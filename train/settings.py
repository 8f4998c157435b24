"""Settings read from the environment (each one is in the README's configuration table)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_DIR = "./model-volume"


def model_dir() -> Path:
    """The model volume: `MODEL_DIR`, else `./model-volume`."""
    return Path(os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR).resolve()
