"""Settings of the inference service, read once from the environment.

The variables and their defaults are the table in docs/configuration.md.

This is the one place the service reads its environment. gunicorn.conf.py reads gunicorn's own
settings (HOST, PORT, WEB_CONCURRENCY, INFERENCE_THREADS, LOG_LEVEL), and runtime.py only sets
defaults for TensorFlow (os.environ.setdefault), which reads them itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    max_upload_bytes: int
    model_cache_size: int
    default_model: str | None
    # None: every request runs its own forward call; a number: requests are gathered into
    # batches for that many milliseconds (0: only what is already waiting).
    batch_window_ms: float | None
    max_batch: int = 32
    # The most images one Open Inference Protocol (/v2) request may carry.
    v2_max_batch: int = 64
    # A client that stops sending its body for this long gets a 408 and its thread back.
    body_read_timeout_s: float = 10.0
    # Set by gunicorn.conf.py: the workers' shared folder of Prometheus samples (None: one
    # process, its own in-memory registry).
    prometheus_multiproc_dir: str | None = None
    # Not from the environment: a test app may skip loading the default model at boot.
    load_default: bool = True

    @classmethod
    def from_env(cls, env: os._Environ | dict | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            model_dir=Path(env.get("MODEL_DIR") or "./model-volume"),
            max_upload_bytes=_positive_int(env, "MAX_UPLOAD_BYTES", 5 * MIB),
            model_cache_size=_positive_int(env, "MODEL_CACHE_SIZE", 4),
            default_model=env.get("DEFAULT_MODEL") or None,
            batch_window_ms=_batch_window(env.get("BATCH_WINDOW_MS", "off")),
            body_read_timeout_s=float(_positive_int(env, "BODY_READ_TIMEOUT", 10)),
            v2_max_batch=_positive_int(env, "V2_MAX_BATCH", 64),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )


def _positive_int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _batch_window(raw: str) -> float | None:
    if raw.strip().lower() in ("", "off", "none", "false"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"BATCH_WINDOW_MS must be 'off' or milliseconds, not {raw!r}") from None
    if not 0 <= value <= 100:
        raise ValueError(f"BATCH_WINDOW_MS must be between 0 and 100, not {value}")
    return value
