"""Faults (issue 6): things that go wrong around the services, and what a user sees then.

Each case is a row of docs/reliability.md (section "Faults"), written by the test itself through
the `reliability` marker and the `observed` fixture (tests/reliability_report.py).

- Inference, one gunicorn (two workers) on a volume holding the session's model: a corrupt
  `.keras` and a `.keras` with a `Lambda` layer dropped into the live volume; models written into
  the volume while 8 clients predict; `kill -9` of a worker under load.
- Train: the train service killed and restarted during a run (the job outlives it, or dies
  too); a volume that fills up while a model is being saved (a small tmpfs as MODEL_DIR: needs
  root for `mount`, skipped with the reason otherwise).

`kill -9` of a training job is in tests/test_train_service.py (same row section).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from conftest import SEED_MODEL_NAME, child_pids, run_service, wait_for
from inference_support import copy_seed_model, mnist_test_digits, png_bytes

FAULTS = "Faults"
CLIENTS = 8
ACTIVE = ("queued", "running", "stopping")

# ================================================================ helpers


def metric_sum(server, prefix: str) -> float:
    """The sum of the samples of /metrics whose line starts with `prefix`.

    A request the kernel gives to a booting worker's socket waits until that worker's model
    load has ended (gunicorn.conf.py's post_worker_init, at most 20 s): hence the 30 s."""
    text = requests.get(server.url("/metrics"), timeout=30).text
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(prefix))


def models_by_name(server) -> dict[str, dict]:
    listing = requests.get(server.url("/api/models"), timeout=10).json()
    return {model["name"]: model for model in listing["models"]}


def predict(url: str, image: bytes, model: str | None = None, session=None):
    data = {"model": model} if model else None
    return (session or requests).post(url, files={"image": ("d.png", image, "image/png")},
                                      data=data, timeout=60)


@dataclass
class Outcome:
    started: float
    ended: float
    model: str | None
    status: int | None  # None: no HTTP answer (connection reset, refused...)
    label: int | None = None
    digit: int | None = None
    answered_by: str | None = None
    error: str | None = None


@dataclass
class Load:
    """`clients` threads, each with its own keep-alive session, predicting until stopped.

    `choose(i)` gives request i's (image, label, model name or None)."""

    url: str
    choose: object
    clients: int = CLIENTS
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(self.clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _client(self, number: int) -> None:
        session = requests.Session()
        i = number
        while not self._stop.is_set():
            image, label, model = self.choose(i)
            i += self.clients
            started = time.monotonic()
            try:
                response = predict(self.url, image, model, session)
                body = response.json() if response.headers.get(
                    "Content-Type", "").startswith("application/json") else {}
                outcome = Outcome(started, time.monotonic(), model, response.status_code,
                                  label, body.get("digit"), body.get("model"),
                                  None if response.ok else (body.get("error") or {}).get("code"))
            except requests.RequestException as error:
                outcome = Outcome(started, time.monotonic(), model, None, label,
                                  error=type(error).__name__)
                session.close()
                session = requests.Session()
            with self._lock:
                self.outcomes.append(outcome)
        session.close()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_for_answers(self, count: int, timeout: float = 120) -> None:
        wait_for(lambda: sum(o.status == 200 for o in self.snapshot()) >= count, timeout,
                 what=f"{count} answers")


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status != 200]


def describe_failures(outcomes: list[Outcome]) -> str:
    kinds: dict[str, int] = {}
    for o in failures(outcomes):
        kind = o.error if o.status is None else f"{o.status} {o.error}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n}× {kind}" for kind, n in sorted(kinds.items())) or "none"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ================================================================ inference: fixtures


@pytest.fixture(scope="module")
def digits(server, tmp_path_factory):
    """(png, label) of mnist-5k test digits that are not a 3 (the `always three` model's answer)
    and that the seed model reads right (it reads 99% of them, not all): then any other answer
    can only come from a broken or half-read model."""
    images, labels = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    candidates = [(png_bytes(image), int(label))
                  for image, label in zip(images[:60], labels[:60], strict=True) if label != 3]
    with requests.Session() as session:
        chosen = [(image, label) for image, label in candidates
                  if predict(server.url("/api/predict"), image, SEED_MODEL_NAME,
                             session).json()["digit"] == label]
    assert len(chosen) >= 24, f"the seed model read only {len(chosen)} of {len(candidates)}"
    return chosen[:24]


CRAFT_SCRIPT = """
import sys, keras
seed, always_three, with_lambda = sys.argv[1:4]
# The seed model with a huge bias on class 3: other weights, unmistakable answers.
model = keras.saving.load_model(seed, safe_mode=True)
dense = model.layers[-1]
kernel, bias = dense.get_weights()
bias[3] += 100.0
dense.set_weights([kernel, bias])
model.save(always_three)
# A model with a Lambda layer: Python code inside the file, which safe mode refuses to run.
inputs = keras.Input((28, 28, 1))
x = keras.layers.Flatten()(inputs)
x = keras.layers.Lambda(lambda t: t * 2.0, name="python_code")(x)
outputs = keras.layers.Dense(10, activation="softmax")(x)
keras.Model(inputs, outputs).save(with_lambda)
"""


@pytest.fixture(scope="module")
def crafted(seed_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Model files made with Keras for these tests: `always-three` and `with-lambda`."""
    folder = tmp_path_factory.mktemp("crafted-models")
    paths = {"always-three": folder / "always-three.keras",
             "with-lambda": folder / "with-lambda.keras"}
    result = subprocess.run(
        [sys.executable, "-c", CRAFT_SCRIPT, str(seed_model_dir / f"{SEED_MODEL_NAME}.keras"),
         str(paths["always-three"]), str(paths["with-lambda"])],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return paths


@pytest.fixture(scope="module")
def volume(seed_model_dir, tmp_path_factory) -> Path:
    volume = tmp_path_factory.mktemp("faults-inference-volume")
    copy_seed_model(seed_model_dir, volume)
    return volume


@pytest.fixture(scope="module")
def server(volume, tmp_path_factory):
    """The inference service with its defaults: two workers of four threads."""
    logs = tmp_path_factory.mktemp("faults-inference-logs")
    with run_service("inference", volume, logs, ready_path="/readyz") as running:
        yield running


def assert_serves(server, digits, model: str | None = None) -> None:
    with requests.Session() as session:
        for image, label in digits[:6]:
            response = predict(server.url("/api/predict"), image, model, session)
            assert response.status_code == 200, response.text
            assert response.json()["digit"] == label


def drop_in(volume: Path, name: str, data: bytes) -> None:
    """Put a file into the volume the way a finished copy appears: complete, at once."""
    temporary = volume / f".{name}.keras.tmp"
    temporary.write_bytes(data)
    temporary.replace(volume / f"{name}.keras")


def refused_until_listed_unloadable(server, name: str, image: bytes) -> tuple[int, dict]:
    """Predict naming `name` until the answering worker lists it unloadable (each worker learns
    it on its own first try); every answer must be 503 model_unavailable. Returns the number of
    tries and the last error."""
    tries, error = 0, {}
    while tries < 40:
        tries += 1
        response = predict(server.url("/api/predict"), image, name)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "model_unavailable"
        listed = models_by_name(server)[name]
        if listed["status"] == "unloadable":
            assert listed["error"]
            return tries, error
    raise AssertionError(f"{name} never listed as unloadable")


# ================================================================ inference: the cases


@pytest.mark.reliability(FAULTS, "a corrupt `.keras` dropped into the volume")
def test_a_corrupt_model_dropped_into_the_volume_is_unloadable_and_the_rest_serves(
        server, volume, seed_model_dir, digits, observed):
    good = (seed_model_dir / f"{SEED_MODEL_NAME}.keras").read_bytes()
    # Cut short (what an interrupted copy leaves), and a complete zip whose weights are garbage.
    drop_in(volume, "cut-short", good[: len(good) // 2])
    with zipfile.ZipFile(seed_model_dir / f"{SEED_MODEL_NAME}.keras") as source, \
            zipfile.ZipFile(volume / ".bad-weights.tmp", "w") as target:
        for item in source.infolist():
            payload = source.read(item)
            if item.filename.endswith(".h5"):
                payload = payload[:1024] + bytes(len(payload) - 1024)
            target.writestr(item, payload)
    (volume / ".bad-weights.tmp").replace(volume / "bad-weights.keras")
    image, label = digits[0]

    # Both are newer than the good model, yet the default stays the good one and serves.
    assert_serves(server, digits)
    notes = []
    for name in ("cut-short", "bad-weights"):
        tries, error = refused_until_listed_unloadable(server, name, image)
        assert name in error["message"]
        notes.append(f"`{name}`: 503 model_unavailable ({error['message'][:90]}…), listed "
                     f"unloadable after {tries} tries")
    listing = requests.get(server.url("/api/models"), timeout=10).json()
    assert listing["default"] == SEED_MODEL_NAME
    assert models_by_name(server)[SEED_MODEL_NAME]["status"] != "unloadable"
    assert_serves(server, digits)
    assert_serves(server, digits, SEED_MODEL_NAME)
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200
    observed("a copy cut in half and a zip with zeroed weights, both newer than the good "
             f"model: {'; '.join(notes)}; the default stayed {SEED_MODEL_NAME}, predictions "
             "(default and named) 200 and right, /readyz 200")
    for name in ("cut-short", "bad-weights"):
        (volume / f"{name}.keras").unlink()


@pytest.mark.reliability(FAULTS, "a `.keras` with a `Lambda` layer")
def test_a_model_with_a_lambda_layer_is_refused_by_safe_mode(server, volume, crafted, digits,
                                                            observed):
    shutil.copyfile(crafted["with-lambda"], volume / ".with-lambda.tmp")
    (volume / ".with-lambda.tmp").replace(volume / "with-lambda.keras")
    image, _ = digits[0]
    tries, error = refused_until_listed_unloadable(server, "with-lambda", image)
    message = error["message"]
    assert "Lambda" in message
    assert "safe mode" in message.lower() or "safe_mode" in message
    listed = models_by_name(server)["with-lambda"]
    assert "Lambda" in listed["error"]
    assert requests.get(server.url("/api/models"), timeout=10).json()["default"] == SEED_MODEL_NAME
    assert_serves(server, digits)
    observed(f"503 model_unavailable: “{message}”; listed unloadable with the same reason; "
             "the other model kept serving")
    (volume / "with-lambda.keras").unlink()


def slow_copy(source: Path, target: Path, seconds: float = 1.5, chunks: int = 30) -> None:
    """`cp` over a slow link: the target is truncated, then grows chunk by chunk."""
    data = source.read_bytes()
    step = -(-len(data) // chunks)
    with target.open("wb") as handle:
        for offset in range(0, len(data), step):
            handle.write(data[offset: offset + step])
            handle.flush()
            time.sleep(seconds / chunks)


@pytest.mark.reliability(FAULTS, "models written into the volume while 8 clients predict")
def test_models_written_while_clients_predict_cause_no_errors(server, volume, seed_model_dir,
                                                             crafted, digits, observed):
    """8 clients predict without pause, half naming `live`, half the default. Meanwhile `live`
    is replaced 8 times the train service's way (a dot-file renamed over it); then a person
    copies a new model into the volume with a slow plain copy (no dot-file: readers see the file
    grow for 1.5 s) and overwrites `live` in place the same way. Every answer must be 200 and come
    from a whole version of a model: the seed's weights read the digit, the other weights always
    say 3."""
    seed_file = seed_model_dir / f"{SEED_MODEL_NAME}.keras"
    versions = [crafted["always-three"], seed_file]
    copy_seed_model(seed_model_dir, volume, "live")

    def choose(i: int):
        image, label = digits[i % len(digits)]
        return image, label, "live" if i % 2 else None

    try:
        outcomes, seconds = replace_live_under_load(server, volume, versions, choose)
    finally:  # the next tests expect the seed model to be the default again
        for name in ("live", "copied-by-hand"):
            (volume / f"{name}.keras").unlink(missing_ok=True)
            (volume / f"{name}.json").unlink(missing_ok=True)
    assert not failures(outcomes), describe_failures(outcomes)
    # A whole version answers either the digit (seed weights) or 3 (the other weights).
    partial = [o for o in outcomes if o.digit not in (o.label, 3)]
    assert not partial, partial[:5]
    live = [o for o in outcomes if o.model == "live"]
    assert {o.answered_by for o in live} == {"live"}
    assert {o.digit == 3 for o in live} == {True, False}  # both versions were served
    loads = metric_sum(server, LIVE_LOADS)
    observed(f"{len(outcomes)} predictions in {seconds:.0f} s while `live` was replaced 8 times "
             "by rename, a new model was copied in and `live` overwritten in place by a slow "
             f"plain copy (1.5 s each): 0 errors, every answer from a whole model ({loads:.0f} "
             "loads of `live` over both workers)")


LIVE_LOADS = 'inference_model_load_seconds_count{model="live"}'


def replace_live_under_load(server, volume: Path, versions: list[Path], choose):
    """Replace `live` under load as the test above says (versions: [always three, seed]);
    returns the outcomes and the seconds it took."""

    def next_version_served(loads_before: float) -> None:
        """Until a worker has loaded the file now in place and clients have used it a while."""
        wait_for(lambda: metric_sum(server, LIVE_LOADS) > loads_before, timeout=60,
                 what="a load of the new `live`")
        load.wait_for_answers(sum(o.status == 200 for o in load.snapshot()) + 16)

    with Load(server.url("/api/predict"), choose) as load:
        load.wait_for_answers(40)
        started = time.monotonic()
        for n in range(8):  # the train service's way: complete file, then rename
            loads = metric_sum(server, LIVE_LOADS)
            temporary = volume / f".live.keras.{n}.tmp"
            shutil.copyfile(versions[n % 2], temporary)
            temporary.replace(volume / "live.keras")
            next_version_served(loads)
        # A person's way: a plain, slow copy straight into the volume. First a new model (the
        # newest: the default once it is complete), then over `live` (the seed's weights now).
        slow_copy(versions[0], volume / "copied-by-hand.keras")
        load.wait_for_answers(sum(o.status == 200 for o in load.snapshot()) + 16)
        loads = metric_sum(server, LIVE_LOADS)
        slow_copy(versions[1] if n % 2 == 0 else versions[0], volume / "live.keras")
        next_version_served(loads)
        seconds = time.monotonic() - started
    return load.snapshot(), seconds


@pytest.mark.reliability(FAULTS, "`kill -9` of an inference worker under load")
def test_a_worker_killed_under_load_is_replaced_and_service_resumes(server, digits, observed):
    master = server.popen.pid
    workers = wait_for(lambda: (lambda pids: pids if len(pids) == 2 else None)(
        child_pids(master)), timeout=30, what="two workers")
    # Each worker loads the default model when it boots: both have, before the kill.
    default_loads = f'inference_model_load_seconds_count{{model="{SEED_MODEL_NAME}"}}'
    loads_before = wait_for(lambda: (lambda n: n if n >= 2 else None)(
        metric_sum(server, default_loads)), timeout=120, what="both workers' model loads")

    def choose(i: int):
        image, label = digits[i % len(digits)]
        return image, label, None

    with Load(server.url("/api/predict"), choose) as load:
        load.wait_for_answers(100)
        victim = min(workers)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        new = wait_for(lambda: child_pids(master) - workers, timeout=60,
                       what="a new worker")
        replaced_at = time.monotonic()
        # The new worker has loaded and warmed the default model: it is ready to serve.
        wait_for(lambda: metric_sum(server, default_loads) > loads_before, timeout=120,
                 what="the new worker's model load")
        ready_at = time.monotonic()
        count_at_ready = len(load.snapshot())
        load.wait_for_answers(count_at_ready + 200 + CLIENTS)
    outcomes = load.snapshot()
    before = [o for o in outcomes if o.ended < killed_at]
    after = [o for o in outcomes if o.started >= ready_at]
    # In flight when the worker died, or started before its replacement was ready.
    during = [o for o in outcomes if o.ended >= killed_at and o.started < ready_at]
    assert child_pids(master) == (workers - {victim}) | new
    assert len(new) == 1
    assert not failures(before), describe_failures(before)
    assert not failures(after), describe_failures(after)
    assert len(after) >= 200
    errors = failures(during)
    # Requests that were in flight on the killed worker are the only ones that may fail.
    observed(f"worker {victim} killed while 8 clients predicted: {len(errors)} of "
             f"{len(during)} requests failed while it was replaced ({describe_failures(during)}); "
             f"gunicorn started worker {next(iter(new))} after {replaced_at - killed_at:.1f} s, "
             f"ready (model loaded) after {ready_at - killed_at:.1f} s; then {len(after)} "
             "requests, 0 errors")
    assert all(o.status is None or o.status >= 500 for o in errors)


# ================================================================ train: helpers

# A short run (~10 s with TensorFlow's import) and a long one (stopped or killed in the tests).
QUICK_RUN = {"architecture": "simple", "dataset": "mnist-5k", "epochs": 1, "limit": 500}
LONG_RUN = {"architecture": "simple", "dataset": "mnist-5k", "epochs": 30}
FINAL = ("succeeded", "failed", "stopped")


def run_of(train, run_id: str) -> dict:
    response = requests.get(train.url(f"/api/train/runs/{run_id}"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def start_run(train, body: dict) -> dict:
    response = requests.post(train.url("/api/train/runs"), json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def wait_state(train, run_id: str, states, timeout: float) -> dict:
    return wait_for(lambda: (lambda run: run if run["state"] in states else None)(
        run_of(train, run_id)), timeout, interval=0.2, what=f"run state in {states}")


def wait_training(train, run_id: str) -> dict:
    """Until the run's job is past its first batch (TensorFlow loaded, training)."""
    return wait_for(lambda: (lambda run: run if run["state"] == "running" and run["step"] > 0
                             else None)(run_of(train, run_id)),
                    timeout=180, interval=0.2, what="first batch")


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def kill_jobs_of(volume: Path) -> None:
    """Training jobs run in their own session and outlive gunicorn: end ours."""
    for path in (volume / "runs").glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            run = json.loads(path.read_text())
            pid = (run.get("executor") or {}).get("pid")
            if run.get("state") in ACTIVE and isinstance(pid, int):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def crash(server) -> None:
    """kill -9 of the whole service: gunicorn's master and workers (one process group)."""
    os.killpg(server.popen.pid, signal.SIGKILL)
    server.popen.wait(timeout=30)


def top_level_files(volume: Path) -> list[str]:
    return sorted(path.name for path in volume.iterdir() if path.is_file())


# ================================================================ train: the cases


@pytest.mark.reliability(FAULTS, "the train service restarted during a run")
def test_a_run_survives_the_train_service_restarting(tmp_path, observed):
    """The service is killed (`kill -9` of gunicorn, master and workers) during a run and
    started again on the same volume. If the job lived on, the new service shows the run
    `running`, keeps one run at a time, and the run ends `succeeded` with its model. If the job
    died too (a node restart), the new service marks the run `failed` with the reason on the
    first look, and a new run starts and succeeds. (A graceful stop, SIGTERM, stops the run
    cleanly: tests/test_train_service.py.)"""
    volume, logs = tmp_path / "volume", tmp_path / "logs"
    volume.mkdir()
    notes = []
    try:
        with run_service("train", volume, logs, ready_path="/readyz") as first:
            run = start_run(first, {**QUICK_RUN, "epochs": 4, "limit": 3000,
                                    "name": "outlived-the-service"})
            job = wait_training(first, run["id"])["executor"]["pid"]
            crash(first)
        assert process_alive(job)
        with run_service("train", volume, logs, ready_path="/readyz") as second:
            seen = run_of(second, run["id"])
            assert seen["state"] in ("running", "succeeded"), seen
            if seen["state"] == "running":
                refused = requests.post(second.url("/api/train/runs"), json=QUICK_RUN,
                                        timeout=30)
                assert refused.status_code == 409, refused.text
                assert refused.json()["error"]["run_id"] == run["id"]
            final = wait_state(second, run["id"], FINAL, timeout=300)
            assert final["state"] == "succeeded", final
            assert (volume / "outlived-the-service.keras").is_file()
            notes.append(f"gunicorn killed during epoch 1 of 4, its job lived on: the restarted "
                         f"service showed the run {seen['state']} (epoch {seen['epoch']}, "
                         f"{seen['progress']:.0%})"
                         + (" and refused a second run (409)" if seen["state"] == "running"
                            else "")
                         + ", then it succeeded with its model")

            doomed = start_run(second, {**LONG_RUN, "name": "never-finished"})
            job = wait_training(second, doomed["id"])["executor"]["pid"]
            crash(second)
            os.kill(job, signal.SIGKILL)
        wait_for(lambda: not process_alive(job), timeout=10, what="the job gone")
        with run_service("train", volume, logs, ready_path="/readyz") as third:
            seen = run_of(third, doomed["id"])
            assert seen["state"] == "failed", seen
            assert str(job) in seen["error"]
            assert seen["finished_at"]
            listed = requests.get(third.url("/api/train/runs"), timeout=10).json()["runs"]
            assert {r["id"]: r["state"] for r in listed}[doomed["id"]] == "failed"
            assert not (volume / "never-finished.keras").exists()
            after = start_run(third, {**QUICK_RUN, "name": "after-restart"})
            assert wait_state(third, after["id"], FINAL, timeout=300)["state"] == "succeeded"
            notes.append(f"gunicorn and the job both killed: on the first look the restarted "
                         f"service said `failed`: “{seen['error']}”; the next run succeeded")
    finally:
        kill_jobs_of(volume)
    observed("; ".join(notes))


# Room enough for run files and progress (a few kB each), not for a model (~450 kB for `simple`).
ROOM_LEFT = 256 * 1024


@pytest.fixture
def small_volume(tmp_path):
    """A 16 MB tmpfs as MODEL_DIR; skipped where mounting is not permitted (not root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as MODEL_DIR needs root")
    mount_point = tmp_path / "small-volume"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs",
                             str(mount_point)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        kill_jobs_of(mount_point)
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill_up(volume: Path, leave: int) -> Path:
    """A file taking all the space but `leave` bytes."""
    stats = os.statvfs(volume)
    size = stats.f_bavail * stats.f_frsize - leave
    filler = volume / "filler.bin"
    with filler.open("wb") as handle:
        block = bytes(1 << 20)
        while size > 0:
            size -= handle.write(block[: min(size, len(block))])
    return filler


@pytest.mark.reliability(FAULTS, "the volume fills up while a model is saved")
def test_a_full_volume_fails_the_run_clearly_and_keeps_earlier_models(
        small_volume, seed_model_dir, digits, tmp_path, observed):
    volume = small_volume
    copy_seed_model(seed_model_dir, volume)
    earlier = {name: sha256(volume / name) for name in top_level_files(volume)}
    logs = tmp_path / "logs"
    with run_service("train", volume, logs, ready_path="/readyz") as train, \
            run_service("inference", volume, logs, ready_path="/readyz") as inference:
        filler = fill_up(volume, ROOM_LEFT)
        run = start_run(train, {**QUICK_RUN, "name": "no-room"})
        failed = wait_state(train, run["id"], FINAL, timeout=300)
        assert failed["state"] == "failed", failed
        error = failed["error"]
        assert "space" in error.lower(), error
        assert "no-room" in error or "model" in error.lower(), error
        # Nothing half-written is left, not even a dot-file; the earlier model is untouched.
        assert top_level_files(volume) == sorted([*earlier, "filler.bin"])
        assert {name: sha256(volume / name) for name in earlier} == earlier
        listing = requests.get(inference.url("/api/models"), timeout=10).json()
        assert [model["name"] for model in listing["models"]] == [SEED_MODEL_NAME]
        assert_serves(inference, digits, SEED_MODEL_NAME)

        # Space freed: the same run goes through, and its model serves.
        filler.unlink()
        again = start_run(train, {**QUICK_RUN, "name": "no-room"})
        assert wait_state(train, again["id"], FINAL, timeout=300)["state"] == "succeeded"
        response = predict(inference.url("/api/predict"), digits[0][0], "no-room")
        assert response.status_code == 200, response.text
    observed(f"a 16 MB tmpfs with {ROOM_LEFT // 1024} kB left, a `simple` model (~450 kB) "
             f"saved into it: the run failed with “{error}”; no partial file or dot-file left, "
             f"the earlier model byte-identical and serving; with the space freed the same run "
             "succeeded and its model served")

