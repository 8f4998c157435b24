"""docker-compose.yml starts the system the way the README says, and seeds it like everyone else.

Read through `docker-compose config` (Debian's docker-compose, which also validates the file).
The seed step is the train CLI's `--starter --if-empty`, in Compose, the k8s Job and `make run`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from packaging_support import K8S, REPO, load_yaml_documents, pod_spec, run, run_local_constant

LONG_RUNNING = ("train", "inference", "ui")


@pytest.fixture(scope="module")
def compose() -> dict:
    result = run(["docker-compose", "--file", str(REPO / "docker-compose.yml"), "config"],
                 env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_the_page_is_published_on_8080(compose):
    (port,) = compose["ui"]["ports"]
    published = str(port.get("published")) if isinstance(port, dict) else port
    assert "8080" in published
    assert not compose["train"].get("ports") and not compose["inference"].get("ports")


def test_services_start_in_order_on_health(compose):
    assert compose["ui"]["depends_on"] == {
        "train": {"condition": "service_healthy"},
        "inference": {"condition": "service_healthy"},
    }
    for service in ("train", "inference"):
        assert compose[service]["depends_on"] == {
            "seed": {"condition": "service_completed_successfully"}}
    assert compose["seed"]["depends_on"] == {
        "volume-init": {"condition": "service_completed_successfully"}}
    for service in LONG_RUNNING:
        test = compose[service]["healthcheck"]["test"]
        assert test[0] == "CMD" and any("/healthz" in part for part in test), service
        assert compose[service]["restart"] == "unless-stopped"


def test_the_model_volume_is_the_bound_folder_at_model_dir(compose):
    for service in ("volume-init", "seed", "train", "inference"):
        (volume,) = compose[service]["volumes"]
        source, target, *mode = volume.split(":") if isinstance(volume, str) else (
            volume["source"], volume["target"])
        assert Path(source) == REPO / "model-volume" and target == "/models", service
        if service != "volume-init":
            assert compose[service]["environment"]["MODEL_DIR"] == "/models"
    assert compose["inference"]["volumes"][0].endswith(":ro")  # inference only reads


def test_containers_run_as_the_images_user_and_only_volume_init_as_root(compose):
    for service in ("seed", "train", "inference"):
        assert compose[service]["user"] == "10001:10001", service
        assert compose[service]["read_only"] is True
        assert compose[service]["cap_drop"] == ["ALL"]
    assert compose["ui"]["read_only"] is True and "user" not in compose["ui"]  # image's 101
    init = compose["volume-init"]
    assert init["user"] == "0:0" and init["cap_add"] == ["CHOWN"]
    assert init["entrypoint"] == ["chown", "-R", "10001:10001", "/models"]


def test_environment_follows_the_design(compose):
    assert compose["train"]["environment"]["TRAIN_EXECUTOR"] == "local"
    assert compose["train"]["environment"]["PORT"] == "8001"
    assert compose["inference"]["environment"]["PORT"] == "8000"
    ui = compose["ui"]["environment"]
    assert ui["INFERENCE_ADDRESS"] == "inference:8000"
    assert ui["TRAIN_URL"] == "http://train:8001"
    assert ui["MAX_UPLOAD_BYTES"] == compose["inference"]["environment"]["MAX_UPLOAD_BYTES"]


# ---------------------------------------------------------------- the seed step

# The one "seed the volume if it has no model" entry point (train/cli.py; tested for real in
# tests/test_train_cli.py): the starter model, unless the volume already holds a model.
SEED_COMMAND = ["python", "-m", "train", "--starter", "--if-empty"]


def seed_commands() -> dict[str, list[str]]:
    """The seed step's command in compose and in the k8s Job."""
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["seed"]
    (job,) = load_yaml_documents(K8S / "jobs" / "train-default.yaml")
    return {"compose": raw["command"], "k8s-job": pod_spec(job)["containers"][0]["command"]}


@pytest.mark.parametrize("where", ["compose", "k8s-job"])
def test_seed_runs_the_train_cli_starter_if_empty(where):
    assert seed_commands()[where] == SEED_COMMAND


def test_make_run_seeds_with_the_same_command():
    assert list(run_local_constant("SEED_COMMAND")) == SEED_COMMAND[1:]
