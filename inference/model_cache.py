"""The models this worker has loaded, and which one a request gets.

- Loaded models live in a least-recently-used cache of `size` entries. A cached model is used
  only while its file is the same file (volume.FileSignature): a file replaced in place is
  reloaded on its next use, and a new file is seen without a restart.
- A file that fails to load is remembered as unloadable until it changes, so a corrupt file
  costs one failed load, not one per request, and never affects the other models.
- A file being overwritten in place (a plain `cp` over a model: it is cut to nothing, then
  grows) is not a whole `.keras` archive until the copy ends. While it is incomplete and changed
  in the last WRITE_IN_PROGRESS_SECONDS, or if it changes while it is being loaded, the version
  loaded before keeps answering: a request never gets a half-written model or an error for it.
- Thread-safe: one lock guards the cache; loads run outside it, one at a time per model, so a
  slow load never blocks requests for models that are already loaded.
- Readiness: the default model is loaded (and warmed) in a background thread; /readyz says
  ready once it is in the cache.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .batching import MicroBatcher
from .preprocess import check_version
from .volume import (
    INCOMPLETE,
    FileSignature,
    InvalidModelNameError,
    ModelFile,
    ModelNotFoundError,
    ModelVolume,
    describe,
    is_zip,
    validate_name,
)

log = logging.getLogger(__name__)

# An incomplete file that changed this recently is taken for a copy still being written.
WRITE_IN_PROGRESS_SECONDS = 10.0


class NoModelsError(LookupError):
    pass


class ModelUnavailableError(RuntimeError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"Model {name!r} can't be used: {reason}")
        self.name = name
        self.reason = reason


@dataclass
class LoadedModel:
    name: str
    signature: FileSignature
    forward: Callable[[np.ndarray], np.ndarray]
    batcher: MicroBatcher | None = None
    # The preprocessing its uploads get (preprocess.py): what its metadata says, else 1.
    preprocessing_version: int = 1
    # What runs it: "litert" (its TFLite copy) or "keras" (runtime.py).
    runtime: str = "keras"

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Ten probabilities for one (28, 28, 1) float32 image."""
        if self.batcher is not None:
            return self.batcher.probabilities(image)
        return self.forward(image[None])[0]


class CacheEvents:
    """Hooks for metrics; the default does nothing."""

    def cache_hit(self, name: str) -> None: ...
    def cache_miss(self, name: str) -> None: ...
    def model_loaded(self, name: str, seconds: float) -> None: ...
    def load_failed(self, name: str) -> None: ...


class ModelCache:
    def __init__(self, volume: ModelVolume, *, size: int = 4,
                 batch_window_ms: float | None = None, max_batch: int = 32,
                 loader: Callable | None = None, events: CacheEvents | None = None):
        self.volume = volume
        self.size = size
        self.batch_window_ms = batch_window_ms
        self.max_batch = max_batch
        self.events = events or CacheEvents()
        self._loader = loader or _default_loader
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._failures: dict[str, tuple[FileSignature, str]] = {}
        self._load_locks: dict[str, threading.Lock] = {}
        self._background_loads: set[str] = set()
        self._background_done = threading.Condition(self._lock)

    # ------------------------------------------------------------------ what a request gets

    def get(self, name: str | None = None) -> LoadedModel:
        """The loaded model `name` (default: the default model), loading it if needed."""
        if name is not None:
            return self._get(validate_name(name))
        configured = self.volume.configured_default
        if configured:
            try:
                return self._get(validate_name(configured))
            except (ModelNotFoundError, InvalidModelNameError):
                raise ModelUnavailableError(configured, "DEFAULT_MODEL names a model that is "
                                            "not in the volume") from None
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

    def default_name(self) -> str | None:
        return self.volume.choose_default(self.volume.scan(fresh=False), self.known_problem)

    # ------------------------------------------------------------------ listing

    def list_models(self) -> tuple[list[dict], str | None]:
        """Every model's description, newest first, and the default's name."""
        files = self.volume.scan(fresh=True)
        if (not self.volume.configured_default
                and self.volume.choose_default(files, self.known_problem) is not None):
            # The default named here is the one a prediction without a name uses (the page
            # preselects it): a newer file nobody has tried yet is loaded first, and if it is
            # broken it is now known as unloadable and the next newest is the default.
            with contextlib.suppress(ModelUnavailableError, ModelNotFoundError, NoModelsError):
                self.get()
        return ([self.describe(f) for f in files],
                self.volume.choose_default(files, self.known_problem))

    def describe(self, model: ModelFile) -> dict:
        problem = self.known_problem(model)
        loaded = self._loaded_version(model)
        status = ("unloadable" if problem else "loaded" if loaded else "available")
        description = describe(model, status=status, problem=problem)
        if loaded is not None:
            description["runtime"] = loaded.runtime
        return description

    def known_problem(self, model: ModelFile) -> str | None:
        """Why this version of the file can't be used, if that is known; else None."""
        if not model.is_zip:
            return INCOMPLETE
        with self._lock:
            failure = self._failures.get(model.name)
        if failure and failure[0] == model.signature:
            return failure[1]
        return None

    def _loaded_version(self, model: ModelFile) -> LoadedModel | None:
        """This very file's loaded model, if it is in the cache."""
        with self._lock:
            loaded = self._cache.get(model.name)
        return loaded if loaded is not None and loaded.signature == model.signature else None

    # ------------------------------------------------------------------ loading

    def _get(self, name: str) -> LoadedModel:
        signature = self.volume.signature_of(name)
        found = self._cached(name, signature)
        if found is not None:
            self.events.cache_hit(name)
            return found
        path = self.volume.path_of(name)
        if not is_zip(path):
            return self._while_incomplete(name, signature)
        self.events.cache_miss(name)
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            # While we waited, another thread may have loaded this very file, or a plain copy
            # may have started writing over it in place (truncated, then growing): that is a
            # file being written, not a broken model, so the previous version answers.
            signature = self.volume.signature_of(name)
            found = self._cached(name, signature)
            if found is not None:
                return found
            if not is_zip(path):
                return self._while_incomplete(name, signature)
            return self._load(name, path, signature)

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
            # The metadata beside the file says which preprocessing the model was trained for:
            # a version this service does not know makes the model unusable, not wrong.
            version = check_version(self.volume.preprocessing_version_of(name))
            compiled = self._loader(path)  # a runtime.CompiledModel
        except Exception as exc:  # noqa: BLE001 - any broken file must stay this model's problem
            return self._after_failed_load(name, signature, exc)
        seconds = time.perf_counter() - started
        batcher = None
        if self.batch_window_ms is not None:
            batcher = MicroBatcher(compiled.forward, max_batch=self.max_batch,
                                   window_s=self.batch_window_ms / 1000)
        loaded = LoadedModel(name, signature, compiled.forward, batcher,
                             preprocessing_version=version, runtime=compiled.runtime)
        with self._lock:
            self._cache.pop(name, None)  # re-inserted last: the most recently used
            self._cache[name] = loaded
            self._failures.pop(name, None)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self.events.model_loaded(name, seconds)
        log.info("loaded model %s in %.2f s (%s)", name, seconds, loaded.runtime)
        return loaded

    def _after_failed_load(self, name: str, signature: FileSignature,
                           exc: Exception) -> LoadedModel:
        """The previous version when the file changed while it was read; else remember the
        failure for this version of the file and raise ModelUnavailableError."""
        previous = self._previous_version(name)
        if previous is not None and self._changed_since(name, signature):
            # Overwritten while we read it: the next request loads the finished file.
            log.info("model %s changed while loading; its previous version answers", name)
            return previous
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        log.warning("model %s can't be loaded: %s", name, reason)
        with self._lock:
            self._failures[name] = (signature, reason)
        self.events.load_failed(name)
        raise ModelUnavailableError(name, reason) from exc

    def _changed_since(self, name: str, signature: FileSignature) -> bool:
        try:
            return self.volume.signature_of(name) != signature
        except (ModelNotFoundError, OSError):
            return True

    # ------------------------------------------------------------------ readiness

    def readiness_problem(self) -> str | None:
        """None when the service can serve: volume readable, default model (if any) loaded.

        When the default is not loaded yet, a background load starts and the answer is
        "loading"; the next probe after it finishes says ready.
        """
        problem = self.volume.problem()
        if problem:
            return problem
        name = self.default_name()
        if name is None:
            return None  # nothing to load: predict answers 503 "train one" until there is
        try:
            if self._cached(name, self.volume.signature_of(name)) is not None:
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
                    self._background_done.notify_all()

        threading.Thread(target=load, name=f"load-{name}", daemon=True).start()

    def wait_for_background_loads(self, timeout: float) -> bool:
        """Block until no background load is under way, at most `timeout` s; True if none is."""
        with self._lock:
            return self._background_done.wait_for(lambda: not self._background_loads, timeout)


def _default_loader(path: Path):
    from .runtime import load

    return load(path)
