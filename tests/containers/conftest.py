"""The compose stack of the three images, up for the session, torn down with its volumes after.

Run by `make test-containers` (which starts Docker's engine and builds the images first), never
by `make test`: tests/conftest.py leaves this folder out unless it is named on the command line.

The stack runs as its own Compose project, on a free port of 127.0.0.1, with a fresh temporary
model volume in place of ./model-volume (an override file rebinds /models), so a user's own
stack and models are untouched. Its containers' logs go to test-artifacts/containers/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "containers"
COMPOSE = os.environ.get("DOCKER_COMPOSE", "docker-compose").split()
DOCKER = os.environ.get("DOCKER", "docker")
IMAGE_TAG = os.environ.get("IMAGE_TAG", "dev")
# The services that mount the model volume, and how (inference only reads it).
VOLUME_MOUNTS = {"volume-init": "", "seed": "", "train": "", "inference": ":ro"}
ONE_SHOTS = ("volume-init", "seed")
LONG_RUNNING = ("train", "inference", "ui")
# Seeding trains the default model (12 epochs of mnist-5k, about a minute here) before the
# services start; TensorFlow then takes a while to import on 2 busy cores.
UP_TIMEOUT = 1200
HEALTHY_TIMEOUT = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    project: str
    base_url: str
    volume: Path
    compose: list[str]
    env: dict[str, str]

    def url(self, path: str) -> str:
        return self.base_url + path

    def compose_run(self, *args: str, timeout: float = 120, check: bool = True
                    ) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.compose, *args], cwd=REPO, env=self.env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def container_ids(self) -> dict[str, str]:
        """Service name → container id, for every container of the project, exited ones too."""
        ids = docker("ps", "--all", "--quiet", "--filter",
                     f"label=com.docker.compose.project={self.project}").split()
        if not ids:
            return {}
        inspected = json.loads(docker("inspect", *ids))
        return {item["Config"]["Labels"]["com.docker.compose.service"]: item["Id"]
                for item in inspected}

    def inspect(self, service: str) -> dict:
        return json.loads(docker("inspect", self.container_ids()[service]))[0]

    def exec(self, service: str, *command: str) -> str:
        return docker("exec", self.container_ids()[service], *command).strip()


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def write_override(path: Path, volume: Path) -> None:
    """A Compose override binding the temporary volume at /models instead of ./model-volume.

    Compose merges service volumes by their path in the container, so this replaces the bind.
    JSON is YAML, so no YAML library is needed.
    """
    services = {name: {"volumes": [f"{volume}:/models{mode}"]}
                for name, mode in VOLUME_MOUNTS.items()}
    path.write_text(json.dumps({"version": compose_file_version(), "services": services}))


def compose_file_version() -> str:
    """docker-compose v1 wants an override to have the same `version` as the main file, if any."""
    for line in (REPO / "docker-compose.yml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "3.9"


def health_report(stack: Stack) -> dict[str, str]:
    """Service → its state: the health status where there is a check, else the run state.

    The one-shots run the train image, whose health check asks a server they never start: for
    them only the run state and exit code count."""
    report = {}
    for service, container in stack.container_ids().items():
        state = json.loads(docker("inspect", container))[0]["State"]
        health = None if service in ONE_SHOTS else state.get("Health", {}).get("Status")
        report[service] = health or f"{state['Status']} (exit {state['ExitCode']})"
    return report


def wait_until_healthy(stack: Stack) -> dict[str, str]:
    """Poll until each long-running service's health check passes; fail early if one is unhealthy
    or a one-shot failed."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    report: dict[str, str] = {}
    while time.monotonic() < deadline:
        report = health_report(stack)
        failed = {name: state for name, state in report.items()
                  if state == "unhealthy" or (name in ONE_SHOTS and state.startswith("exited")
                                              and not state.endswith("(exit 0)"))}
        if failed:
            raise RuntimeError(f"services failed: {failed}")
        if all(report.get(name) == "healthy" for name in LONG_RUNNING):
            return report
        time.sleep(2)
    raise TimeoutError(f"not healthy in {HEALTHY_TIMEOUT}s: {report}")


def save_logs(stack: Stack) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for service, container in stack.container_ids().items():
        result = subprocess.run([DOCKER, "logs", "--timestamps", container], capture_output=True,
                                text=True, timeout=60, check=False)
        (ARTIFACTS / f"{service}.log").write_text(result.stdout + result.stderr)


def remove_volume(volume: Path) -> None:
    """The volume's files belong to the containers' user; root removes them, and elsewhere a
    throwaway container of the train image does (as root, nothing else mounted)."""
    try:
        shutil.rmtree(volume)
    except PermissionError:
        subprocess.run([DOCKER, "run", "--rm", "--user", "0:0", "--network", "none",
                        "--entrypoint", "sh", "-v", f"{volume}:/v", f"digits-train:{IMAGE_TAG}",
                        "-c", "rm -rf /v/* /v/.[!.]*"], check=False, timeout=120)
        shutil.rmtree(volume, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    """The three images up under Compose, every health check passing; removed after the session."""
    work = tmp_path_factory.mktemp("compose")
    volume = work / "model-volume"
    volume.mkdir()
    override = work / "docker-compose.override.json"
    write_override(override, volume)
    port = free_port()
    project = f"digits-e2e-{os.getpid()}"
    env = dict(os.environ, UI_PORT=str(port), IMAGE_TAG=IMAGE_TAG, COMPOSE_PROJECT_NAME=project)
    compose = [*COMPOSE, "--project-name", project, "--file", str(REPO / "docker-compose.yml"),
               "--file", str(override)]
    stack = Stack(project, f"http://127.0.0.1:{port}", volume, compose, env)
    try:
        stack.compose_run("up", "--detach", "--no-build", timeout=UP_TIMEOUT)
        wait_until_healthy(stack)
        yield stack
    finally:
        save_logs(stack)
        stack.compose_run("down", "--volumes", "--remove-orphans", "--timeout", "20",
                          timeout=300, check=False)
        remove_volume(volume)


@pytest.fixture(scope="session")
def http() -> requests.Session:
    with requests.Session() as session:
        yield session
