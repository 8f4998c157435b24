"""Shared test fixtures: free ports, the services under their real gunicorn command, a model.

Everything started here listens on 127.0.0.1 and is stopped when its fixture ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import requests

# The page's browser fixtures (tests/browser_fixtures.py): the whole system behind nginx, Chromium.
pytest_plugins = ["browser_fixtures"]

# Reliability cases write their rows of docs/reliability.md (issue 6).
pytest_plugins += ["reliability_report"]  # added to, not replacing, the list above

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"

# tests/containers/ runs the built images under Docker Compose: `make test-containers` runs it
# (naming the folder), `make test` leaves it out.
collect_ignore = ["containers"]
# tests/soak/ puts the system under load for minutes: `make soak` runs it, `make test` does not.
collect_ignore += ["soak"]
# tests/cluster/ needs the local Kubernetes cluster: `make test-cluster` runs it, `make test`
# does not.
collect_ignore += ["cluster"]

# The model every inference and page test uses: the default `cnn` recipe (its own defaults, 8
# epochs, ~40 s on 2 cores) on the packaged mnist-5k, trained once per test session through the
# train CLI (the real code path). It reads 99% of mnist-5k's 500 test digits; the `simple` example
# reaches only ~96.8% on 4,500 digits, too close to the 97% the upload test asks of the service.
SEED_MODEL_NAME = "mnist5k-cnn"
SEED_MODEL_ARCHITECTURE = "cnn"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A process started in its own session, so that stopping it stops its children too."""

    def __init__(self, args: list[str], env: dict[str, str], base_url: str, log_path: Path):
        self.args = args
        self.env = env
        self.base_url = base_url
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, path: str = "/healthz", timeout: float = 180.0) -> Server:
        """Poll `path` until it answers 200; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if requests.get(self.base_url + path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.base_url}{path} not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with_suppressed_lookup(os.killpg, self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)

    def url(self, path: str) -> str:
        return self.base_url + path


def with_suppressed_lookup(func, *args) -> None:
    with suppress(ProcessLookupError):
        func(*args)


def service_env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MODEL_DIR": str(model_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def gunicorn_command(service: str) -> list[str]:
    """The services' real command line, as in their Dockerfiles and the Makefile."""
    return [str(VENV_BIN / "gunicorn"), "--config", f"{service}/gunicorn.conf.py",
            f"{service}:create_app()"]


@contextmanager
def run_service(service: str, model_dir: Path, log_dir: Path, ready_path: str = "/healthz",
                **extra_env: str) -> Iterator[Server]:
    """Run `service` ("train" or "inference") under gunicorn on a free port until the block ends."""
    port = free_port()
    server = Server(gunicorn_command(service), service_env(model_dir, port, **extra_env),
                    f"http://127.0.0.1:{port}", log_dir / f"{service}-{port}.log")
    server.start()
    try:
        server.wait_ready(ready_path)
        yield server
    finally:
        server.stop()


def train_cli(model_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m train ...`, the batch command line, on `model_dir`."""
    env = service_env(model_dir, 0)
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory) -> Path:
    """A model volume holding one good model trained on mnist-5k. Tests copy it, never change it."""
    model_dir = tmp_path_factory.mktemp("seed-volume")
    result = train_cli(model_dir, "--dataset", "mnist-5k", "--architecture",
                       SEED_MODEL_ARCHITECTURE, "--name", SEED_MODEL_NAME)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (model_dir / f"{SEED_MODEL_NAME}.keras").is_file()
    return model_dir


@pytest.fixture
def model_volume(tmp_path, seed_model_dir) -> Path:
    """A fresh copy of the seed volume (models only), for a test that may change it."""
    volume = tmp_path / "volume"
    volume.mkdir()
    copy_seed_model(seed_model_dir, volume)
    return volume


def copy_seed_model(seed_model_dir: Path, volume: Path, name: str = SEED_MODEL_NAME) -> None:
    """Copy the seed model in the way the train service writes: dot-file, then rename."""
    for suffix in (".json", ".keras"):
        temporary = volume / f".{name}{suffix}.tmp"
        shutil.copyfile(seed_model_dir / f"{SEED_MODEL_NAME}{suffix}", temporary)
        temporary.replace(volume / f"{name}{suffix}")


@pytest.fixture
def log_dir(tmp_path) -> Path:
    path = tmp_path / "logs"
    path.mkdir(exist_ok=True)
    return path


# ---------------------------------------------------------------- shared helpers


def wait_for(check, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def child_pids(parent: int) -> set[int]:
    """The live (non-zombie) children of `parent`: a gunicorn master's workers."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            children.add(int(entry.name))
    return children
