"""docker-compose.yml starts the system the way the README says, and its seed step really works.

Read through `docker-compose config` (Debian's docker-compose, which also validates the file);
the seed step's shell script is run here for real, with a stand-in `python` that records the
command it was given instead of training.
"""

from __future__ import annotations

import os
import stat
import subprocess
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
    assert ui["INFERENCE_URL"] == "http://inference:8000"
    assert ui["TRAIN_URL"] == "http://train:8001"
    assert ui["MAX_UPLOAD_BYTES"] == compose["inference"]["environment"]["MAX_UPLOAD_BYTES"]


# ---------------------------------------------------------------- the seed step, for real


def seed_scripts() -> dict[str, tuple[str, dict]]:
    """The seed step's shell script in compose (after compose's $$ → $) and in the k8s Job."""
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["seed"]
    (job,) = load_yaml_documents(K8S / "jobs" / "train-default.yaml")
    container = pod_spec(job)["containers"][0]
    return {
        "compose": (raw["command"][2].replace("$$", "$"), raw["command"][:2]),
        "k8s-job": (container["command"][2], container["command"][:2]),
    }


def run_seed(script: str, volume: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess,
                                                                  Path]:
    """Run the script with MODEL_DIR=volume and a `python` that writes its arguments to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "python-args"
    stub = bin_dir / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "MODEL_DIR": str(volume)},
                            check=False)
    return result, record


@pytest.mark.parametrize("where", ["compose", "k8s-job"])
def test_seed_trains_the_make_run_default_model_on_an_empty_volume(where, tmp_path):
    script, shell = seed_scripts()[where]
    assert shell == ["sh", "-c"]
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / ".partial.keras").write_text("a dot-file is no model")
    result, record = run_seed(script, volume, tmp_path)
    assert result.returncode == 0, result.stderr
    # The same model as `make run` trains when the volume is empty (scripts/run_local.py).
    assert record.read_text().split("\n")[:-1] == [
        "-m", "train", *run_local_constant("DEFAULT_MODEL_ARGS"),
        "--name", run_local_constant("DEFAULT_MODEL_NAME")]


@pytest.mark.parametrize("where", ["compose", "k8s-job"])
def test_seed_does_nothing_when_the_volume_has_a_model(where, tmp_path):
    script, _ = seed_scripts()[where]
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "mine.keras").write_bytes(b"PK")
    result, record = run_seed(script, volume, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nothing to" in result.stdout
    assert not record.exists()
