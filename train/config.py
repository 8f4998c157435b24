"""The train service's configuration: every environment variable it reads, read here once.

`Settings.from_env()` is called when the app is made (and by the job, the CLI and gunicorn's exit
hook); a bad value fails right there with a ValueError naming the variable, not at the first
request that needs it. gunicorn.conf.py keeps reading gunicorn's own HOST, PORT,
WEB_CONCURRENCY, TRAIN_THREADS and LOG_LEVEL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from train.precision import FLOAT32, PRECISIONS

DEFAULT_MODEL_DIR = "./model-volume"
EXECUTORS = ("local", "kubernetes")
DEFAULT_STOP_GRACE_SECONDS = 30.0
# Feedback (docs/feedback.md): the samples kept, the POSTs a client may send per minute, the
# largest original upload and the largest body of a feedback request (the original in base64,
# a third larger, plus the 28×28 PNG and the fields).
DEFAULT_FEEDBACK_MAX_SAMPLES = 10_000
DEFAULT_FEEDBACK_RATE_LIMIT = 60
DEFAULT_FEEDBACK_MAX_ORIGINAL_BYTES = 256 * 1024
DEFAULT_FEEDBACK_MAX_BODY_BYTES = 512 * 1024
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_pod_name() -> str | None:
    """The pod's name: Kubernetes sets the container's HOSTNAME to it."""
    return os.environ.get("HOSTNAME") or None


def own_namespace() -> str:
    """The pod's namespace (from its service-account mount), else `default`."""
    try:
        return NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def number(env: Mapping[str, str], name: str, default: float, kind: type = float):
    """`kind(env[name])`, the default when unset or empty; a ValueError naming the variable."""
    text = env.get(name) or ""
    if not text:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: must be a {kind.__name__}") from None
    return value


def precision(env: Mapping[str, str]) -> str:
    """TRAIN_PRECISION: `float32` (the default), `mixed_bfloat16` or `auto` (train/precision.py)."""
    value = env.get("TRAIN_PRECISION") or FLOAT32
    if value not in PRECISIONS:
        raise ValueError(f"TRAIN_PRECISION={value!r}: choose one of {', '.join(PRECISIONS)}")
    return value


def at_least(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    """An integer variable that must be at least `low`; a ValueError naming it otherwise."""
    value = number(env, name, default, int)
    if value < low:
        raise ValueError(f"{name}={value}: must be at least {low}")
    return value


@dataclass(frozen=True)
class KubernetesSettings:
    """How the `kubernetes` executor makes a run's Job (each variable: docs, configuration)."""

    namespace: str
    image: str | None
    claim_name: str
    model_dir: str
    image_pull_policy: str = "IfNotPresent"
    cpu_request: str = "1"
    memory_request: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "3Gi"
    ttl_seconds_after_finished: int = 3600
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    # Passed on to each Job, which trains under it (train/precision.py).
    train_precision: str = FLOAT32
    # Without TRAIN_IMAGE the Job runs this pod's own image, found by the pod's name. Settings made
    # by hand (tests) take it from the process too: it describes where the code runs, not a choice.
    pod_name: str | None = field(default_factory=own_pod_name)

    @classmethod
    def from_environment(cls, model_dir: Path,
                         env: Mapping[str, str] | None = None) -> KubernetesSettings:
        env = os.environ if env is None else env
        return cls(
            namespace=env.get("TRAIN_NAMESPACE") or own_namespace(),
            image=env.get("TRAIN_IMAGE") or None,
            claim_name=env.get("MODEL_PVC") or "model-volume",
            model_dir=str(model_dir),
            image_pull_policy=env.get("TRAIN_IMAGE_PULL_POLICY") or "IfNotPresent",
            cpu_request=env.get("TRAIN_JOB_CPU_REQUEST") or "1",
            memory_request=env.get("TRAIN_JOB_MEMORY_REQUEST") or "1Gi",
            cpu_limit=env.get("TRAIN_JOB_CPU_LIMIT") or "2",
            memory_limit=env.get("TRAIN_JOB_MEMORY_LIMIT") or "3Gi",
            ttl_seconds_after_finished=number(env, "TRAIN_JOB_TTL_SECONDS", 3600, int),
            stop_grace_seconds=number(env, "TRAIN_STOP_GRACE_SECONDS",
                                      DEFAULT_STOP_GRACE_SECONDS),
            train_precision=precision(env),
            pod_name=env.get("HOSTNAME") or None,
        )


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    executor: str = "local"
    # When set, mutating routes need `Authorization: Bearer <api_token>`.
    api_token: str | None = None
    # A local job that does not stop within this many seconds of a stop request is killed.
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    # Read only with the kubernetes executor, so a local service never trips over them.
    kubernetes: KubernetesSettings | None = None
    # Set by gunicorn.conf.py: every worker's metrics are written there and summed by /metrics.
    metrics_dir: str | None = None
    feedback_max_samples: int = DEFAULT_FEEDBACK_MAX_SAMPLES
    # POST /api/feedback per client address per minute; 0 turns the limit off.
    feedback_rate_limit: int = DEFAULT_FEEDBACK_RATE_LIMIT
    feedback_max_original_bytes: int = DEFAULT_FEEDBACK_MAX_ORIGINAL_BYTES
    feedback_max_body_bytes: int = DEFAULT_FEEDBACK_MAX_BODY_BYTES
    # How many reverse proxies in front of the service to believe about the client's address
    # (their X-Forwarded-For): 1 behind the page's nginx, 0 when clients reach it directly (a
    # client could otherwise pick its own address and escape the rate limit).
    trusted_proxies: int = 0
    # What a run computes with (train/precision.py): float32, or bfloat16 to train faster.
    train_precision: str = FLOAT32

    def __post_init__(self):
        # test_config may give the volume as a string; everything else takes a resolved Path.
        object.__setattr__(self, "model_dir", Path(self.model_dir).resolve())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        model_dir = Path(env.get("MODEL_DIR") or DEFAULT_MODEL_DIR).resolve()
        executor = env.get("TRAIN_EXECUTOR") or "local"
        if executor not in EXECUTORS:
            raise ValueError(f"TRAIN_EXECUTOR={executor!r}: choose one of {', '.join(EXECUTORS)}")
        return cls(
            model_dir=model_dir,
            executor=executor,
            api_token=env.get("TRAIN_API_TOKEN") or None,
            stop_grace_seconds=number(env, "TRAIN_STOP_GRACE_SECONDS",
                                      DEFAULT_STOP_GRACE_SECONDS),
            kubernetes=(KubernetesSettings.from_environment(model_dir, env)
                        if executor == "kubernetes" else None),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            feedback_max_samples=at_least(env, "FEEDBACK_MAX_SAMPLES",
                                          DEFAULT_FEEDBACK_MAX_SAMPLES, 1),
            feedback_rate_limit=at_least(env, "FEEDBACK_RATE_LIMIT",
                                         DEFAULT_FEEDBACK_RATE_LIMIT, 0),
            feedback_max_original_bytes=at_least(env, "FEEDBACK_MAX_ORIGINAL_BYTES",
                                                 DEFAULT_FEEDBACK_MAX_ORIGINAL_BYTES, 1024),
            feedback_max_body_bytes=at_least(env, "FEEDBACK_MAX_BODY_BYTES",
                                             DEFAULT_FEEDBACK_MAX_BODY_BYTES, 4096),
            trusted_proxies=at_least(env, "TRAIN_TRUSTED_PROXIES", 0, 0),
            train_precision=precision(env),
        )
