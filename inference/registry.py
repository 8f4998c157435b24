"""The models on the volume: what there is, which one is the default, and a cache of loaded ones.

- Every `<name>.keras` in MODEL_DIR whose name is valid is a model (dot-files are temporary
  files of atomic writes and are ignored); `<name>.json` beside it is its metadata.
- The default model is DEFAULT_MODEL, or else the newest loadable model.
- Loaded models live in a least-recently-used cache of `cache_size` entries. A cached model is
  used only while its file is the same file (inode, size, mtime, ctime): a file replaced in place
  is reloaded on its next use, and a new file is seen without a restart.
- A file that fails to load is remembered as unloadable until it changes, so a corrupt file
  costs one failed load, not one per request, and never affects the other models.
- A file being overwritten in place (a plain `cp` over a model: it is cut to nothing, then
  grows) is not a whole `.keras` archive until the copy ends. While it is incomplete and changed
  in the last WRITE_IN_PROGRESS_SECONDS, or if it changes while it is being loaded, the version
  loaded before keeps answering: a request never gets a half-written model or an error for it.
- Thread-safe: one lock guards the cache; loads run outside it, one at a time per model, so a
  slow load never blocks requests for models that are already loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .batching import MicroBatcher

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_SUFFIX = ".keras"
INCOMPLETE = "not a complete .keras file (not a zip archive)"
# An incomplete file that changed this recently is taken for a copy still being written.
WRITE_IN_PROGRESS_SECONDS = 10.0


class InvalidModelNameError(ValueError):
    pass


class ModelNotFoundError(LookupError):
    def __init__(self, name: str):
        super().__init__(f"There is no model named {name!r} in the volume.")
        self.name = name


class NoModelsError(LookupError):
    pass


class ModelUnavailableError(RuntimeError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"Model {name!r} can't be used: {reason}")
        self.name = name
        self.reason = reason


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


@dataclass
class LoadedModel:
    name: str
    signature: FileSignature
    forward: Callable[[np.ndarray], np.ndarray]
    batcher: MicroBatcher | None = None

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Ten probabilities for one (28, 28, 1) float32 image."""
        if self.batcher is not None:
            return self.batcher.probabilities(image)
        return self.forward(image[None])[0]


class RegistryEvents:
    """Hooks for metrics; the default does nothing."""

    def cache_hit(self, name: str) -> None: ...
    def cache_miss(self, name: str) -> None: ...
    def model_loaded(self, name: str, seconds: float) -> None: ...
    def load_failed(self, name: str) -> None: ...


@dataclass
class _ScanCache:
    directory_key: tuple | None = None
    files: list[ModelFile] = field(default_factory=list)


class ModelRegistry:
    def __init__(self, model_dir: Path, *, cache_size: int = 4, default_model: str | None = None,
                 batch_window_ms: float | None = None, max_batch: int = 32,
                 loader: Callable | None = None, events: RegistryEvents | None = None):
        self.model_dir = Path(model_dir)
        self.cache_size = cache_size
        self.configured_default = default_model
        self.batch_window_ms = batch_window_ms
        self.max_batch = max_batch
        self.events = events or RegistryEvents()
        self._loader = loader or _default_loader
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._failures: dict[str, tuple[FileSignature, str]] = {}
        self._load_locks: dict[str, threading.Lock] = {}
        self._background_loads: set[str] = set()
        self._metadata: dict[Path, tuple[FileSignature, dict, str | None]] = {}
        self._scan = _ScanCache()

    # ------------------------------------------------------------------ the volume

    def volume_problem(self) -> str | None:
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
            if not fresh and self._scan.directory_key == key:
                return self._scan.files
        files = self._read_directory()
        with self._lock:
            self._scan = _ScanCache(key, files)
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
        created = _parse_time(metadata.get("created_at")) or stat.st_mtime
        return ModelFile(name, path, FileSignature.of(stat), metadata, error, created,
                         _is_zip(path))

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

    # ------------------------------------------------------------------ listing

    def describe(self, model: ModelFile) -> dict:
        """The model's metadata plus what this service knows about its file."""
        description = dict(model.metadata)
        description.update({
            "name": model.name,
            "created_at": model.metadata.get("created_at") or _iso(model.created),
            "test_accuracy": model.metadata.get("test_accuracy"),
            "architecture": model.metadata.get("architecture"),
            "size_bytes": model.signature.size,
            "modified_at": _iso(model.signature.mtime_ns / 1e9),
        })
        problem = self._known_problem(model)
        description["status"] = ("unloadable" if problem else
                                 "loaded" if self._is_loaded(model) else "available")
        description["error"] = problem
        if model.metadata_error:
            description["metadata_error"] = model.metadata_error
        return description

    def list_models(self) -> tuple[list[dict], str | None]:
        files = self.scan(fresh=True)
        if not self.configured_default and self._choose_default(files) is not None:
            # The default named here is the one a prediction without a name uses (the page
            # preselects it): a newer file nobody has tried yet is loaded first, and if it is
            # broken it is now known as unloadable and the next newest is the default.
            with contextlib.suppress(ModelUnavailableError, ModelNotFoundError, NoModelsError):
                self.get()
        return [self.describe(f) for f in files], self._choose_default(files)

    def find(self, name: str) -> ModelFile:
        validate_name(name)
        for model in self.scan(fresh=True):
            if model.name == name:
                return model
        raise ModelNotFoundError(name)

    def default_name(self) -> str | None:
        return self._choose_default(self.scan(fresh=False))

    def _choose_default(self, files: list[ModelFile]) -> str | None:
        if self.configured_default:
            return self.configured_default
        # Newest first; a corrupt newest file must not take the service down with it.
        for model in files:
            if not self._known_problem(model):
                return model.name
        return None

    def _known_problem(self, model: ModelFile) -> str | None:
        if not model.is_zip:
            return INCOMPLETE
        with self._lock:
            failure = self._failures.get(model.name)
        if failure and failure[0] == model.signature:
            return failure[1]
        return None

    def _is_loaded(self, model: ModelFile) -> bool:
        with self._lock:
            loaded = self._cache.get(model.name)
        return loaded is not None and loaded.signature == model.signature

    # ------------------------------------------------------------------ loading

    def get(self, name: str | None = None) -> LoadedModel:
        """The loaded model `name` (default: the default model), loading it if needed."""
        if name is not None:
            return self._get(validate_name(name))
        if self.configured_default:
            try:
                return self._get(validate_name(self.configured_default))
            except (ModelNotFoundError, InvalidModelNameError):
                raise ModelUnavailableError(self.configured_default, "DEFAULT_MODEL names a "
                                            "model that is not in the volume") from None
        # The newest model: if it turns out not to load, it is now known as unloadable and
        # the next newest becomes the default; a broken file never takes the service down.
        tried = set()
        while (name := self.default_name()) is not None and name not in tried:
            tried.add(name)
            try:
                return self._get(name)
            except (ModelUnavailableError, ModelNotFoundError) as exc:
                last_error = exc
        if tried:
            raise last_error
        raise NoModelsError()

    def _get(self, name: str) -> LoadedModel:
        path = self.model_dir / f"{name}{MODEL_SUFFIX}"
        signature = self._signature(path, name)
        found = self._cached(name, signature)
        if found is not None:
            self.events.cache_hit(name)
            return found
        if not _is_zip(path):
            return self._while_incomplete(name, signature)
        self.events.cache_miss(name)
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            # Another thread may have loaded this very file while we waited.
            signature = self._signature(path, name)
            found = self._cached(name, signature)
            return found if found is not None else self._load(name, path, signature)

    def _previous_version(self, name: str) -> LoadedModel | None:
        with self._lock:
            return self._cache.get(name)

    def _while_incomplete(self, name: str, signature: FileSignature) -> LoadedModel:
        """The file is not a whole `.keras` archive: while it is still being written, the
        version loaded before (if any) answers; otherwise the model is unavailable."""
        if time.time() - signature.mtime_ns / 1e9 < WRITE_IN_PROGRESS_SECONDS:
            previous = self._previous_version(name)
            if previous is not None:
                self.events.cache_hit(name)
                return previous
        raise ModelUnavailableError(name, INCOMPLETE)

    def _signature(self, path: Path, name: str) -> FileSignature:
        try:
            return FileSignature.of(os.stat(path))
        except FileNotFoundError:
            raise ModelNotFoundError(name) from None

    def _cached(self, name: str, signature: FileSignature) -> LoadedModel | None:
        """The cached model when it is this version of the file; raises if that version failed."""
        with self._lock:
            loaded = self._cache.get(name)
            if loaded is not None and loaded.signature == signature:
                self._cache.move_to_end(name)
                return loaded
            failure = self._failures.get(name)
        if failure and failure[0] == signature:
            raise ModelUnavailableError(name, failure[1])
        return None

    def _load(self, name: str, path: Path, signature: FileSignature) -> LoadedModel:
        started = time.perf_counter()
        try:
            forward = self._loader(path)
        except Exception as exc:  # noqa: BLE001 - any broken file must stay this model's problem
            previous = self._previous_version(name)
            if previous is not None and self._changed_since(path, signature):
                # Overwritten while we read it: the next request loads the finished file.
                log.info("model %s changed while loading; its previous version answers", name)
                return previous
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("model %s can't be loaded: %s", name, reason)
            with self._lock:
                self._failures[name] = (signature, reason)
            self.events.load_failed(name)
            raise ModelUnavailableError(name, reason) from exc
        seconds = time.perf_counter() - started
        batcher = None
        if self.batch_window_ms is not None:
            batcher = MicroBatcher(forward, max_batch=self.max_batch,
                                   window_s=self.batch_window_ms / 1000)
        loaded = LoadedModel(name, signature, forward, batcher)
        with self._lock:
            self._cache.pop(name, None)  # re-inserted last: the most recently used
            self._cache[name] = loaded
            self._failures.pop(name, None)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self.events.model_loaded(name, seconds)
        log.info("loaded model %s in %.2f s", name, seconds)
        return loaded

    def _changed_since(self, path: Path, signature: FileSignature) -> bool:
        try:
            return FileSignature.of(os.stat(path)) != signature
        except OSError:
            return True

    # ------------------------------------------------------------------ readiness

    def readiness_problem(self) -> str | None:
        """None when the service can serve: volume readable, default model (if any) loaded.

        When the default is not loaded yet, a background load starts and the answer is
        "loading"; the next probe after it finishes says ready.
        """
        problem = self.volume_problem()
        if problem:
            return problem
        name = self.default_name()
        if name is None:
            return None  # nothing to load: predict answers 503 "train one" until there is
        path = self.model_dir / f"{name}{MODEL_SUFFIX}"
        try:
            signature = self._signature(path, name)
            if self._cached(name, signature) is not None:
                return None
        except ModelNotFoundError:
            return f"the default model {name!r} (DEFAULT_MODEL) is not in the volume"
        except ModelUnavailableError as exc:
            return f"the default model {name!r} can't be loaded: {exc.reason}"
        self.load_in_background(name)
        return f"loading the default model {name!r}"

    def load_in_background(self, name: str | None = None) -> None:
        """Start loading `name` (default: the default model) unless that is under way."""
        name = name or self.default_name()
        if name is None:
            return
        with self._lock:
            if name in self._background_loads:
                return
            self._background_loads.add(name)

        def load():
            try:
                self.get(name)
            except Exception as exc:  # noqa: BLE001 - reported by readiness_problem
                log.warning("background load of %s failed: %s", name, exc)
            finally:
                with self._lock:
                    self._background_loads.discard(name)

        threading.Thread(target=load, name=f"load-{name}", daemon=True).start()


def _default_loader(path: Path):
    from .runtime import load_compiled

    return load_compiled(path).forward


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
