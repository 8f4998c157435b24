"""The model volume: its layout, model names and atomic writes.

Every write goes to a dot-prefixed temporary file in the target's folder, is flushed and fsynced,
then renamed over the target with `os.replace`, so a reader sees the old file or the new one,
never half of one. Readers ignore dot-files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

MODEL_SUFFIX = ".keras"
METADATA_SUFFIX = ".json"
RUNS_FOLDER = "runs"
DATASETS_FOLDER = "datasets"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_valid_name(name: str) -> bool:
    return bool(NAME_PATTERN.fullmatch(name))


def model_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}{MODEL_SUFFIX}"


def metadata_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}{METADATA_SUFFIX}"


def lite_path(model_dir: Path, name: str) -> Path:
    """The model's TFLite copy for the inference service (train/lite_copy.py)."""
    return model_dir / f"{name}.tflite"


def runs_dir(model_dir: Path) -> Path:
    return model_dir / RUNS_FOLDER


def datasets_dir(model_dir: Path) -> Path:
    return model_dir / DATASETS_FOLDER


def model_names(model_dir: Path) -> list[str]:
    """Names of the complete models in the volume (dot-files are temporaries, never models)."""
    if not model_dir.is_dir():
        return []
    return sorted(path.name[: -len(MODEL_SUFFIX)] for path in model_dir.glob(f"*{MODEL_SUFFIX}")
                  if not path.name.startswith(".") and path.is_file())


def temporary_path(target: Path, suffix: str = "") -> Path:
    """A dot-prefixed sibling of `target` that no reader takes for a real file."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{suffix}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_target(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target, suffix)
    try:
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_target(target) as temporary:
        temporary.write_bytes(data)


def write_json_atomic(target: Path, document: dict) -> None:
    write_bytes_atomic(target, json.dumps(document, indent=2, sort_keys=False).encode() + b"\n")


def read_json(path: Path) -> dict | None:
    """A JSON document, or None when the file is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
