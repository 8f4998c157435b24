"""`make run`'s launcher, scripts/run_local.py, as a user runs it: in the foreground, then SIGTERM
to its process group (what Ctrl-C or `kill -TERM -PGID` does), and everything is gone.

The empty-volume case serves first and trains the starter model as a run of the train service
(about a minute): marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import ARTIFACTS, REPO, SEED_MODEL_NAME, free_port, wait_for

from train.params import STARTER

# `make run` runs it as a module of the repository (scripts/ is a package).
LAUNCHER = ("-m", "scripts.run_local")
STARTER_NAME = STARTER["name"]


def start_launcher(model_dir: Path, log_path: Path, ports: dict[str, int] | None = None
                   ) -> tuple[subprocess.Popen, dict[str, int]]:
    ports = ports or {"UI_PORT": free_port(), "INFERENCE_PORT": free_port(),
                      "TRAIN_PORT": free_port()}
    env = dict(os.environ, MODEL_DIR=str(model_dir), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1", **{name: str(port) for name, port in ports.items()})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, *LAUNCHER], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, ports


def wait_for_url(process: subprocess.Popen, log_path: Path, url: str, timeout: float) -> None:
    """Until the launcher printed the page's URL (it does once all three answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the launcher exited with {process.returncode}:\n{log_path.read_text()}")
        if f"open {url}" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    pytest.fail(f"no URL printed within {timeout}s:\n{log_path.read_text()[-3000:]}")


def port_answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except requests.RequestException:
        return False
    return True


def stop_and_check(process: subprocess.Popen, ports: dict[str, int], log_path: Path) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        returncode = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the launcher did not stop on SIGTERM:\n{log_path.read_text()[-3000:]}")
    assert returncode == 0, log_path.read_text()[-3000:]
    still = [name for name, port in ports.items() if port_answers(port)]
    assert still == [], f"still answering after the launcher stopped: {still}"
    assert "stopped nginx, inference and train" in log_path.read_text()


def test_make_run_serves_the_page_and_api_and_stops_cleanly(model_volume, tmp_path):
    log_path = ARTIFACTS / "logs" / "run_local.log"
    process, ports = start_launcher(model_volume, log_path)
    url = f"http://127.0.0.1:{ports['UI_PORT']}"
    try:
        wait_for_url(process, log_path, url, timeout=180)
        page = requests.get(url + "/", timeout=5)
        assert page.status_code == 200 and "<title>digits</title>" in page.text
        models = requests.get(url + "/api/models", timeout=30).json()
        assert SEED_MODEL_NAME in [model["name"] for model in models["models"]]
        options = requests.get(url + "/api/train/options", timeout=30).json()
        assert "mnist-5k" in [dataset["name"] for dataset in options["datasets"]]
        assert "No model in" not in log_path.read_text()  # the volume had one: no training
    finally:
        if process.poll() is None:
            stop_and_check(process, ports, log_path)


def sockets_in_time_wait(port: int) -> int:
    """How many TCP connections with local port `port` are in TIME_WAIT (/proc/net/tcp)."""
    time_wait = "06"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state == time_wait:
            count += 1
    return count


def test_make_run_starts_again_right_after_a_run_that_served_requests(model_volume):
    """Stop `make run` after using the page and start it again at once: the connections the
    servers closed wait in TIME_WAIT, which must not make the launcher call the ports busy."""
    first_log = ARTIFACTS / "logs" / "run_local-first.log"
    process, ports = start_launcher(model_volume, first_log)
    url = f"http://127.0.0.1:{ports['UI_PORT']}"
    try:
        wait_for_url(process, first_log, url, timeout=180)
        for path in ("/", "/api/models", "/api/train/options", "/healthz"):
            # nginx closes these connections itself: its side goes to TIME_WAIT.
            answer = requests.get(url + path, headers={"Connection": "close"}, timeout=30)
            assert answer.status_code == 200
    finally:
        if process.poll() is None:
            stop_and_check(process, ports, first_log)
    assert sockets_in_time_wait(ports["UI_PORT"]) > 0  # the situation this test is about

    second_log = ARTIFACTS / "logs" / "run_local-second.log"
    process, _ = start_launcher(model_volume, second_log, ports)
    try:
        wait_for_url(process, second_log, url, timeout=180)
        assert requests.get(url + "/api/models", timeout=30).status_code == 200
    finally:
        if process.poll() is None:
            stop_and_check(process, ports, second_log)


def test_a_busy_port_is_reported_in_words(model_volume):
    """Bad situation tried: the page's port is taken by another program."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(os.environ, MODEL_DIR=str(model_volume), UI_PORT=str(port),
                   INFERENCE_PORT=str(free_port()), TRAIN_PORT=str(free_port()))
        result = subprocess.run([sys.executable, *LAUNCHER], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"port(s) {port}" in result.stderr and "in use" in result.stderr


@pytest.mark.slow
def test_make_run_on_an_empty_volume_serves_while_the_starter_model_trains(tmp_path):
    """The page is up before the starter model exists; its training is a run the page can
    show; the model joins the picker's list when it is saved."""
    volume = tmp_path / "empty-volume"
    log_path = ARTIFACTS / "logs" / "run_local-empty.log"
    process, ports = start_launcher(volume, log_path)
    url = f"http://127.0.0.1:{ports['UI_PORT']}"
    try:
        wait_for_url(process, log_path, url, timeout=180)
        assert requests.get(url + "/", timeout=10).status_code == 200
        runs = wait_for(lambda: requests.get(url + "/api/train/runs", timeout=10).json()["runs"],
                        timeout=60, what="the starter's run")
        assert runs[0]["params"]["name"] == STARTER_NAME
        models = wait_for(lambda: requests.get(url + "/api/models", timeout=30).json()["models"],
                          timeout=600, what="the starter model in /api/models")
        assert [model["name"] for model in models] == [STARTER_NAME]
        assert models[0]["test_accuracy"] > 0.9
        # The seeding's first line says "...can predict once it is saved": wait for its last.
        log = wait_for(lambda: f"saved {STARTER_NAME}" in log_path.read_text()
                       and log_path.read_text(), timeout=30, what="the seeding's last line")
        assert "No model in" in log and f"saved {STARTER_NAME}" in log
        assert re.search(r"epoch (\d+)/\1\b", log)  # its progress, up to the last epoch
    finally:
        if process.poll() is None:
            stop_and_check(process, ports, log_path)
        shutil.rmtree(volume, ignore_errors=True)
