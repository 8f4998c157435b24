"""The model volume as this service sees it: which models there are, their metadata, the default.

- Every `<name>.keras` in MODEL_DIR whose name is valid is a model (dot-files are temporary
  files of atomic writes and are ignored); `<name>.json` beside it is its metadata.
- The default model is DEFAULT_MODEL, or else the newest model not known to be unloadable.
- A file is identified by its signature (inode, size, mtime, ctime): a replacement always
  changes one of these, so the loaded-model cache (model_cache.py) keys on it.
- Cheap to ask often: the directory listing is reused while the directory itself is unchanged,
  and a metadata file is parsed again only when it changes. The service only reads the volume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .timeutil import parse_iso, utc_iso

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_SUFFIX = ".keras"
INCOMPLETE = "not a complete .keras file (not a zip archive)"


class InvalidModelNameError(ValueError):
    pass


class ModelNotFoundError(LookupError):
    def __init__(self, name: str):
        super().__init__(f"There is no model named {name!r} in the volume.")
        self.name = name


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidModelNameError(
            "A model name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit (so no path characters); got {name[:80]!r}.")
    return name


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of a file: a replacement always changes one of these."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileSignature:
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass
class ModelFile:
    name: str
    path: Path
    signature: FileSignature
    metadata: dict
    metadata_error: str | None
    created: float  # seconds since the epoch: the metadata's created_at, else the file's mtime
    is_zip: bool


# What the loaded-model cache knows about a file: why it can't be used, or None.
KnownProblem = Callable[[ModelFile], str | None]


@dataclass
class _Listing:
    directory_key: tuple | None = None
    files: list[ModelFile] = field(default_factory=list)


class ModelVolume:
    def __init__(self, model_dir: Path, *, default_model: str | None = None):
        self.model_dir = Path(model_dir)
        self.configured_default = default_model
        self._lock = threading.Lock()
        self._listing = _Listing()
        self._metadata: dict[Path, tuple[FileSignature, dict, str | None]] = {}

    def problem(self) -> str | None:
        """Why the volume can't be read, or None when it can."""
        try:
            with os.scandir(self.model_dir):
                return None
        except FileNotFoundError:
            return f"the model volume {self.model_dir} does not exist"
        except NotADirectoryError:
            return f"the model volume {self.model_dir} is not a directory"
        except PermissionError:
            return f"the model volume {self.model_dir} is not readable"

    def path_of(self, name: str) -> Path:
        return self.model_dir / f"{name}{MODEL_SUFFIX}"

    def signature_of(self, name: str) -> FileSignature:
        """The signature of model `name`'s file now: the one stat() a request costs."""
        try:
            return FileSignature.of(os.stat(self.path_of(name)))
        except FileNotFoundError:
            raise ModelNotFoundError(name) from None

    def metadata_of(self, name: str) -> dict:
        """Model `name`'s metadata (`<name>.json`), {} when it has none or it is unreadable."""
        return self._read_metadata(self.path_of(name).with_suffix(".json"))[0]

    def preprocessing_version_of(self, name: str):
        """The preprocessing version model `name`'s metadata asks for (1 when it says none)."""
        return preprocessing_version(self.metadata_of(name))

    def find(self, name: str) -> ModelFile:
        validate_name(name)
        for model in self.scan(fresh=True):
            if model.name == name:
                return model
        raise ModelNotFoundError(name)

    def choose_default(self, files: list[ModelFile], known_problem: KnownProblem) -> str | None:
        """DEFAULT_MODEL, else the newest of `files` without a known problem."""
        if self.configured_default:
            return self.configured_default
        # Newest first; a corrupt newest file must not take the service down with it.
        for model in files:
            if not known_problem(model):
                return model.name
        return None

    def scan(self, fresh: bool = True) -> list[ModelFile]:
        """The models on the volume, newest first.

        `fresh=False` reuses the previous scan while the directory itself is unchanged (a file
        added, removed or renamed into it changes the directory's mtime): the predict path asks
        for the default model on every request and should not list the folder each time.
        """
        try:
            dir_stat = os.stat(self.model_dir)
        except OSError:
            return []
        key = (dir_stat.st_ino, dir_stat.st_mtime_ns, dir_stat.st_ctime_ns)
        with self._lock:
            if not fresh and self._listing.directory_key == key:
                return self._listing.files
        files = self._read_directory()
        with self._lock:
            self._listing = _Listing(key, files)
        return files

    def _read_directory(self) -> list[ModelFile]:
        files = []
        try:
            entries = list(os.scandir(self.model_dir))
        except OSError:
            return []
        for entry in entries:
            name = entry.name[: -len(MODEL_SUFFIX)]
            if (entry.name.startswith(".") or not entry.name.endswith(MODEL_SUFFIX)
                    or not NAME_PATTERN.fullmatch(name)):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError:
                continue  # removed while we looked
            files.append(self._model_file(name, Path(entry.path), stat))
        files.sort(key=lambda f: (f.created, f.name), reverse=True)
        return files

    def _model_file(self, name: str, path: Path, stat: os.stat_result) -> ModelFile:
        metadata, error = self._read_metadata(path.with_suffix(".json"))
        created = _seconds(metadata.get("created_at")) or stat.st_mtime
        return ModelFile(name, path, FileSignature.of(stat), metadata, error, created,
                         is_zip(path))

    def _read_metadata(self, path: Path) -> tuple[dict, str | None]:
        try:
            signature = FileSignature.of(os.stat(path))
        except OSError:
            return {}, None
        cached = self._metadata.get(path)
        if cached and cached[0] == signature:
            return cached[1], cached[2]
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(metadata, dict):
                raise ValueError("not a JSON object")
            error = None
        except (OSError, ValueError) as exc:
            metadata, error = {}, f"unreadable metadata: {exc}"
        self._metadata[path] = (signature, metadata, error)
        return metadata, error


def describe(model: ModelFile, *, status: str, problem: str | None) -> dict:
    """What /api/models says about a model: its metadata plus what we know about its file.

    `status` is `loaded`, `available` or `unloadable`; `problem` says why it is unloadable.
    """
    description = dict(model.metadata)
    description.update({
        "name": model.name,
        "created_at": model.metadata.get("created_at") or utc_iso(model.created),
        "test_accuracy": model.metadata.get("test_accuracy"),
        "architecture": model.metadata.get("architecture"),
        "size_bytes": model.signature.size,
        "modified_at": utc_iso(model.signature.mtime_ns / 1e9),
        "status": status,
        "error": problem,
        "preprocessing_version": preprocessing_version(model.metadata),
    })
    if model.metadata_error:
        description["metadata_error"] = model.metadata_error
    return description


def preprocessing_version(metadata: dict):
    """What the metadata's `preprocessing.version` says (preprocess.py checks it when the model
    loads); 1 when it says nothing, as every model trained before versions existed."""
    preprocessing = metadata.get("preprocessing")
    if isinstance(preprocessing, dict) and "version" in preprocessing:
        return preprocessing["version"]
    return 1


def lite_copy_of(path: Path) -> bytes | None:
    """The TFLite copy the train service saved beside the model file at `path` (`<name>.tflite`),
    when the model's metadata vouches for both files as they are now (the sha256 of each); None
    otherwise, and the model is served through Keras. train/lite_copy.py says why it exists.

    The bytes, not the path: what was checked is what gets loaded, even if the file is replaced
    a moment later (LiteRT would otherwise map the file, and read whatever it holds then)."""
    try:
        metadata = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        lite = path.with_suffix(".tflite").read_bytes()
        vouched = metadata["tflite"]["sha256"], metadata["sha256"]
        if vouched == (hashlib.sha256(lite).hexdigest(), _sha256_of(path)):
            return lite
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no copy, no metadata, or not ours: Keras serves
    return None


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_zip(path: Path) -> bool:
    """Whether `path` is a whole zip archive, as a finished `.keras` file is."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _seconds(created_at) -> float | None:
    if not isinstance(created_at, str):
        return None
    try:
        return parse_iso(created_at).timestamp()
    except ValueError:
        return None
