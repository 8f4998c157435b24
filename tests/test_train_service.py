"""The train service under its real gunicorn command, on a temporary model volume.

One service instance serves the whole module (starting TensorFlow jobs is the slow part, not the
service). Every run trains on the packaged mnist-5k, so nothing here needs the network or the full
MNIST. Runs go one at a time, as the service demands, so the tests run in this file's order and
each waits until no run is active before it starts its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
import requests
from conftest import run_service, wait_for

METADATA_FIELDS = {
    "name", "created_at", "architecture", "hyperparameters", "dataset", "test_accuracy",
    "test_loss", "per_class_accuracy", "confusion_matrix", "history", "train_seconds",
    "parameter_count", "input_shape", "size_bytes", "sha256", "tensorflow_version",
    "keras_version", "training_precision",
}
RUN_FIELDS = {
    "id", "state", "params", "created_at", "started_at", "finished_at", "epoch", "epochs", "step",
    "steps", "progress", "metrics", "history", "model", "error", "stop_requested",
}
ACTIVE = ("queued", "running", "stopping")


def kill_leftover_jobs(model_dir: Path) -> None:
    """Jobs run in their own session, so stopping gunicorn leaves them: end ours here."""
    for path in (model_dir / "runs").glob("*.json"):
        run = json.loads(path.read_text())
        pid = (run.get("executor") or {}).get("pid")
        if run.get("state") in ACTIVE and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train-volume")


@pytest.fixture(scope="module")
def train(volume, tmp_path_factory):
    logs = tmp_path_factory.mktemp("train-logs")
    try:
        with run_service("train", volume, logs, ready_path="/readyz") as server:
            yield server
    finally:
        kill_leftover_jobs(volume)


def get(train, path: str, **kwargs) -> requests.Response:
    return requests.get(train.url(path), timeout=10, **kwargs)


def post(train, path: str, body: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(train.url(path), json=body, timeout=30, **kwargs)


def run_state(train, run_id: str) -> dict:
    response = get(train, f"/api/train/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def no_active_run(train) -> None:
    wait_for(lambda: all(run["state"] not in ACTIVE
                         for run in get(train, "/api/train/runs").json()["runs"]),
             timeout=60, what="no active run")


def start(train, body: dict) -> dict:
    no_active_run(train)
    response = post(train, "/api/train/runs", body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_training(train, run_id: str) -> dict:
    """Wait until the run's job is past its first batch (TensorFlow loaded, training)."""
    return wait_for(lambda: (lambda run: run if run["state"] == "running" and run["step"] > 0
                             else None)(run_state(train, run_id)),
                    timeout=120, what="first batch")


def user_files(volume: Path) -> list[str]:
    """What a reader of the volume takes for files: everything but dot-files."""
    return sorted(str(path.relative_to(volume)) for path in volume.rglob("*")
                  if path.is_file() and not path.name.startswith("."))


def read_events(response: requests.Response):
    """Parse a server-sent event stream into (event, data) pairs."""
    event, data = "message", []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


# ---------------------------------------------------------------------------- no training needed

def test_options_show_architectures_datasets_defaults_and_bounds(train):
    options = get(train, "/api/train/options").json()
    architectures = {arch["name"]: arch for arch in options["architectures"]}
    assert {"simple", "cnn"} <= set(architectures)
    for arch in architectures.values():
        assert {"epochs", "batch_size", "learning_rate", "augment"} <= set(arch["defaults"])
    assert {"mnist", "mnist-5k"} <= {dataset["name"] for dataset in options["datasets"]}
    assert options["defaults"]["architecture"] in architectures
    # The volume holds no mnist.npz, so the default data set is the packaged one.
    assert options["defaults"]["dataset"] == "mnist-5k"
    assert options["bounds"]["epochs"] == {"min": 1, "max": 100}
    assert options["bounds"]["batch_size"] == {"min": 16, "max": 1024}


def test_openapi_describes_every_route(train):
    spec = get(train, "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in [
        ("/api/train/runs", "post"), ("/api/train/runs", "get"),
        ("/api/train/runs/{run_id}", "get"), ("/api/train/runs/{run_id}/stop", "post"),
        ("/api/train/runs/{run_id}/events", "get"), ("/api/train/options", "get"),
        ("/api/train/models/{name}", "delete"), ("/api/retrain_model/", "post"),
        ("/api/stop_training/", "post"), ("/api/training_progress/", "get"),
        ("/api/check_model_status/", "get"), ("/api/model_accuracy/", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing"


def test_health_and_metrics(train):
    assert get(train, "/healthz").json() == {"status": "ok"}
    assert get(train, "/readyz").status_code == 200
    metrics = get(train, "/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "train_http_requests_total" in metrics.text
    assert 'train_runs{state="succeeded"}' in metrics.text


# Each bad input and the field the 422 must name.
BAD_PARAMS = [
    ({"epochs": 0}, "epochs"), ({"epochs": 101}, "epochs"), ({"epochs": "5"}, "epochs"),
    ({"epochs": 2.5}, "epochs"), ({"epochs": True}, "epochs"),
    ({"batch_size": 15}, "batch_size"), ({"batch_size": 1025}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"), ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": 1.5}, "learning_rate"), ({"learning_rate": "fast"}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"), ({"limit": 99}, "limit"), ({"limit": 0}, "limit"),
    ({"architecture": "resnet"}, "architecture"), ({"architecture": 3}, "architecture"),
    ({"dataset": "imagenet"}, "dataset"), ({"dataset": "../../etc/passwd"}, "dataset"),
    ({"augment": "sometimes"}, "augment"),
    ({"name": "../evil"}, "name"), ({"name": ".hidden"}, "name"), ({"name": ""}, "name"),
    ({"name": "x" * 65}, "name"), ({"name": "a b"}, "name"),
    ({"colour": "blue"}, "colour"),
]


# Bad inputs that are also rows of docs/reliability.md (issue 6's bad-input battery).
RELIABILITY_ROWS = {"epochs='5'": "train: epochs as a string",
                    "batch_size=0": "train: batch size 0",
                    "dataset='imagenet'": "train: unknown data set",
                    "architecture='resnet'": "train: unknown architecture",
                    "name='../evil'": "train: a name with a slash"}


def bad_param(body: dict, field: str):
    case = f"{field}={next(iter(body.values()))!r}"[:40]
    marks = ([pytest.mark.reliability("Bad input", RELIABILITY_ROWS[case])]
             if case in RELIABILITY_ROWS else [])
    return pytest.param(body, field, id=case, marks=marks)


@pytest.mark.parametrize(("body", "field"), [bad_param(*case) for case in BAD_PARAMS])
def test_bad_parameters_get_422_naming_the_field(train, body, field, observed):
    response = post(train, "/api/train/runs", body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert field in error["fields"]
    assert field in error["message"]
    assert get(train, "/api/train/options").status_code == 200
    observed(f"{json.dumps(body)}: 422 invalid_parameters, fields.{field}: "
             f"\"{error['fields'][field]}\"; no run started; the next request got 200")


def test_a_body_that_is_not_json_gets_400_in_our_format(train):
    response = requests.post(train.url("/api/train/runs"), data="{epochs: 3",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_unknown_run_route_and_model_get_404_in_our_format(train):
    for response in (get(train, "/api/train/runs/20990101-000000-abcdef"),
                     post(train, "/api/train/runs/20990101-000000-abcdef/stop"),
                     get(train, "/api/train/runs/nope/events"),
                     requests.delete(train.url("/api/train/models/nope"), timeout=10),
                     get(train, "/api/no/such/route")):
        assert response.status_code == 404, response.text
        assert set(response.json()["error"]) >= {"code", "message"}
    wrong_method = requests.delete(train.url("/api/train/options"), timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_earlier_routes_before_any_model(train):
    assert get(train, "/api/check_model_status/").json() == {
        "status": "no_model", "is_training": False, "model_exists": False, "model": None,
        "run_id": None}
    accuracy = get(train, "/api/model_accuracy/")
    assert accuracy.status_code == 404
    assert accuracy.json()["error"]["code"] == "no_model"
    stop = post(train, "/api/stop_training/")
    assert stop.status_code == 409
    assert stop.json()["error"]["code"] == "no_active_run"
    assert get(train, "/api/training_progress/").json()["status"] == "idle"


# ---------------------------------------------------------------------------- real training runs

def test_default_run_goes_queued_running_succeeded_with_full_metadata(train, volume):
    run = start(train, {"epochs": 3, "dataset": "mnist-5k", "name": "default-3"})
    assert run["state"] == "queued"
    assert set(run) >= RUN_FIELDS
    assert run["params"]["architecture"] == get(train, "/api/train/options").json()[
        "defaults"]["architecture"]

    # A second start while this one is active is refused, naming the active run.
    second = post(train, "/api/train/runs", {"epochs": 1})
    assert second.status_code == 409
    assert second.json()["error"]["run_id"] == run["id"]
    assert get(train, "/api/check_model_status/").json()["is_training"] is True

    states, progress = [run["state"]], [run["progress"]]
    with requests.get(train.url(f"/api/train/runs/{run['id']}/events"), stream=True,
                      timeout=300) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for event, data in read_events(stream):
            if event == "end":
                break
            assert event == "progress"
            if data["state"] != states[-1]:
                states.append(data["state"])
            progress.append(data["progress"])
            legacy = get(train, "/api/training_progress/").json()
            assert legacy["run_id"] == run["id"]
            assert 0 <= legacy["progress"] <= 100
    assert states == ["queued", "running", "succeeded"]
    assert progress == sorted(progress), "progress went backwards"
    assert progress[-1] == 1.0
    assert len(progress) > 5  # live progress, not just start and end

    final = run_state(train, run["id"])
    assert final["state"] == "succeeded"
    assert final["model"] == "default-3"
    assert [entry["epoch"] for entry in final["history"]] == [1, 2, 3]

    metadata = json.loads((volume / "default-3.json").read_text())
    assert set(metadata) >= METADATA_FIELDS
    assert metadata["test_accuracy"] >= 0.90
    assert metadata["dataset"] == {"name": "mnist-5k", "train": 4500, "test": 500}
    assert len(metadata["per_class_accuracy"]) == 10
    assert [len(row) for row in metadata["confusion_matrix"]] == [10] * 10
    assert sum(map(sum, metadata["confusion_matrix"])) == 500
    assert len(metadata["history"]) == 3
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(
        metadata["history"][0])
    assert metadata["input_shape"] == [28, 28, 1]
    assert metadata["training_precision"] == "float32"  # TRAIN_PRECISION's default
    assert metadata["size_bytes"] == (volume / "default-3.keras").stat().st_size

    # The earlier routes see the new model.
    assert get(train, "/api/check_model_status/").json()["status"] == "ready"
    accuracy = get(train, "/api/model_accuracy/").json()
    assert accuracy["model"] == "default-3"
    assert accuracy["accuracy"] == metadata["test_accuracy"]
    progress = get(train, "/api/training_progress/").json()
    assert (progress["status"], progress["progress"], progress["model"]) == (
        "succeeded", 100.0, "default-3")

    # A second run may not take the same model name.
    taken = post(train, "/api/train/runs", {"name": "default-3"})
    assert taken.status_code == 422
    assert "name" in taken.json()["error"]["fields"]


def test_a_stopped_run_is_stopped_within_10_s_and_writes_no_model(train, volume):
    before = user_files(volume)
    run = start(train, {"epochs": 30, "dataset": "mnist-5k", "architecture": "simple",
                        "name": "never-saved"})
    wait_training(train, run["id"])
    stop = post(train, f"/api/train/runs/{run['id']}/stop")
    assert stop.status_code == 202
    assert stop.json()["stop_requested"] is True
    assert stop.json()["state"] == "stopping"
    stopped = wait_for(lambda: (lambda r: r if r["state"] == "stopped" else None)(
        run_state(train, run["id"])), timeout=10, what="state stopped")
    assert stopped["finished_at"]
    assert not (volume / "never-saved.keras").exists()
    assert not (volume / "never-saved.json").exists()
    assert [name for name in user_files(volume) if not name.startswith("runs/")] == [
        name for name in before if not name.startswith("runs/")]
    again = post(train, f"/api/train/runs/{run['id']}/stop")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_finished"


def test_a_job_ended_by_sigterm_without_a_stop_request_leaves_its_run_failed(train, volume):
    """SIGTERM with no stop asked for (Kubernetes deleting or evicting the job's pod): the job
    ends after its batch, writes no model, and the run is `failed` with the reason, not
    `stopped` as if someone had asked."""
    run = start(train, {"epochs": 30, "dataset": "mnist-5k", "architecture": "simple",
                        "name": "terminated"})
    pid = wait_training(train, run["id"])["executor"]["pid"]
    os.kill(pid, signal.SIGTERM)
    failed = wait_for(lambda: (lambda r: r if r["state"] not in ACTIVE else None)(
        run_state(train, run["id"])), timeout=10, what="the run's end")
    assert failed["state"] == "failed", failed
    assert "SIGTERM" in failed["error"] and "no model was saved" in failed["error"]
    assert not (volume / "terminated.keras").exists()


@pytest.mark.reliability("Faults", "`kill -9` of a training job")
def test_a_killed_job_leaves_its_run_failed_and_no_partial_files(train, volume, observed):
    run = start(train, {"epochs": 30, "dataset": "mnist-5k", "architecture": "simple",
                        "name": "killed"})
    pid = wait_training(train, run["id"])["executor"]["pid"]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(lambda: (lambda r: r if r["state"] == "failed" else None)(
        run_state(train, run["id"])), timeout=10, what="state failed")
    assert "SIGKILL" in failed["error"]
    top_level = [name for name in user_files(volume) if "/" not in name]
    assert "killed.keras" not in top_level and "killed.tflite" not in top_level
    # Only complete models (each with its metadata and TFLite copy) outside runs/ and datasets/.
    assert all(name.endswith((".keras", ".json", ".tflite")) for name in top_level)
    for name in top_level:
        if name.endswith(".keras"):
            assert name[:-6] + ".json" in top_level
    assert get(train, "/api/check_model_status/").json()["is_training"] is False
    # The next run works.
    after = start(train, {"epochs": 1, "limit": 500, "dataset": "mnist-5k",
                          "architecture": "simple", "name": "after-killed"})
    done = wait_for(lambda: (lambda r: r if r["state"] not in ACTIVE else None)(
        run_state(train, after["id"])), timeout=300, what="the next run's end")
    assert done["state"] == "succeeded", done
    assert (volume / "after-killed.keras").is_file()
    observed(f"job killed during epoch {failed['epoch'] or 1}: `failed` within 10 s with "
             f"“{failed['error']}”; no `killed.keras`, no partial file; the next run succeeded")


def test_earlier_routes_start_with_defaults_and_stop_the_active_run(train):
    no_active_run(train)
    started = post(train, "/api/retrain_model/")
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "started"
    defaults = get(train, "/api/train/options").json()["defaults"]
    assert body["run"]["params"]["architecture"] == defaults["architecture"]
    assert body["run"]["params"]["epochs"] == defaults["epochs"]
    again = post(train, "/api/retrain_model/")
    assert again.status_code == 409
    assert again.json()["error"]["run_id"] == body["run_id"]

    status = get(train, "/api/check_model_status/").json()
    assert status["status"] == "training"
    assert status["run_id"] == body["run_id"]
    progress = get(train, "/api/training_progress/").json()
    assert progress["is_training"] is True
    assert progress["run_id"] == body["run_id"]

    stop = post(train, "/api/stop_training/")
    assert stop.status_code == 202
    assert stop.json() == {"status": "stopping", "message": f"stopping run {body['run_id']}",
                           "run_id": body["run_id"]}
    wait_for(lambda: run_state(train, body["run_id"])["state"] == "stopped", timeout=60,
             what="state stopped")
    assert get(train, "/api/training_progress/").json()["status"] == "stopped"


def test_runs_are_listed_newest_first(train):
    runs = get(train, "/api/train/runs").json()["runs"]
    assert len(runs) >= 2
    created = [run["created_at"] for run in runs]
    assert created == sorted(created, reverse=True)


def test_delete_model_removes_it_its_metadata_and_its_tflite_copy(train, volume):
    assert (volume / "default-3.keras").exists()
    assert (volume / "default-3.tflite").exists()
    response = requests.delete(train.url("/api/train/models/default-3"), timeout=10)
    assert response.status_code == 200
    assert response.json()["deleted"] == "default-3"
    assert not (volume / "default-3.keras").exists()
    assert not (volume / "default-3.json").exists()
    assert not (volume / "default-3.tflite").exists()
    assert requests.delete(train.url("/api/train/models/default-3"),
                           timeout=10).status_code == 404


def test_shutting_the_service_down_stops_its_local_job(tmp_path):
    """Jobs outlive web workers, but not the service: SIGTERM to gunicorn stops the run cleanly."""
    volume = tmp_path / "volume"
    volume.mkdir()
    try:
        with run_service("train", volume, tmp_path) as server:
            run = start(server, {"epochs": 30, "architecture": "simple", "name": "orphan"})
            pid = wait_training(server, run["id"])["executor"]["pid"]
        # The block's end stopped gunicorn (SIGTERM to its process group, not the job's).
        stored = json.loads((volume / "runs" / f"{run['id']}.json").read_text())
        assert stored["state"] == "stopped"
        assert stored["stop_requested"] is True
        wait_for(lambda: not Path(f"/proc/{pid}").exists()
                 or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3],
                 timeout=10, what="job process gone")
        assert not (volume / "orphan.keras").exists()
    finally:
        kill_leftover_jobs(volume)
