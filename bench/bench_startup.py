"""`make bench-startup`: how long a new user waits, measured as a user would meet it.

Side by side in one run, each on an empty temporary volume and free ports:

- **make run** (`python -m scripts.run_local`, what `make run` starts once the venv is there):
  seconds from the command's start until the page and the two APIs it loads first
  (`/api/models`, `/api/train/runs`) answer through nginx, until the starter
  model is in `/api/models`, and until the first prediction of a drawn digit answers 200; the
  starter's test accuracy; and, from the starter's run record, where the wait went (when its job
  started, how long its epochs took, when it finished).
- **train first** (the order `make run` had before): the starter trained by the CLI, then the
  same three services started; the same three times.
- **an inference worker**: seconds from gunicorn's start to `/readyz` with one model on the
  volume.
- **containers** (when Docker's engine answers and `make images` built them): `docker run` to
  the health route answering, for digits-inference and digits-train.

The load average is printed before and after: the machine may be shared. Benchmarks, not tests:
no figure here fails anything.

    python bench/bench_startup.py [--rounds N] [--skip-train-first] [--skip-containers]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.launcher import free_port, gunicorn, running, running_system  # noqa: E402

GOALS = {"page": 10.0, "first prediction": 20.0, "container": 10.0}
IMAGE_TAG = os.environ.get("IMAGE_TAG", "dev")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def http(url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, dict | None]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def drawn_seven() -> str:
    """A 280×280 drawing of a 7 as the page's pad sends it: a PNG data URL."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=255, width=22,
                               joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_until(check, start: float, timeout: float) -> float:
    """Seconds from `start` until `check()` is true (polling every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"not within {timeout} s")


def run_timeline(ui_url: str, started_wall: float) -> dict:
    """Where make run's wait went, from the starter's run record once it has succeeded (read
    after the fact: polling it meanwhile would take CPU from the training it measures): seconds
    from the command's start until the job started, the seconds its epochs took, and until the
    run finished (the model saved)."""
    runs = (http(ui_url + "/api/train/runs")[1] or {}).get("runs") or []
    if not runs or not runs[0].get("started_at") or not runs[0].get("finished_at"):
        return {}

    def since_start(iso: str) -> float:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - started_wall

    run = runs[0]
    return {"job started": since_start(run["started_at"]),
            "epochs": sum(epoch.get("seconds") or 0 for epoch in run.get("history") or []),
            "run finished": since_start(run["finished_at"])}


def milestones(ui_url: str, start: float) -> dict:
    image = drawn_seven()
    # The page counts as up when it and the APIs it loads first answer through nginx (nginx alone
    # serves the HTML before the services are ready).
    page = wait_until(lambda: all(http(ui_url + path)[0] == 200
                                  for path in ("/", "/api/models", "/api/train/runs")), start, 300)
    listed = wait_until(lambda: (http(ui_url + "/api/models")[1] or {}).get("models"), start, 600)
    predict = ui_url + "/api/predict"
    first = wait_until(lambda: http(predict, {"image": image}, timeout=30)[0] == 200, start, 120)
    models = http(ui_url + "/api/models")[1]["models"]
    return {"page": page, "model listed": listed, "first prediction": first,
            "starter accuracy": models[0].get("test_accuracy")}


def ports_env(volume: Path) -> tuple[dict, str]:
    ports = {"UI_PORT": free_port(), "INFERENCE_PORT": free_port(), "TRAIN_PORT": free_port()}
    env = dict(os.environ, MODEL_DIR=str(volume), TF_CPP_MIN_LOG_LEVEL="2",
               **{name: str(port) for name, port in ports.items()})
    return env, f"http://127.0.0.1:{ports['UI_PORT']}"


def measure_make_run(workdir: Path) -> dict:
    volume = workdir / "make-run"
    env, ui_url = ports_env(volume)
    start, started_wall = time.monotonic(), time.time()
    process = subprocess.Popen([sys.executable, "-m", "scripts.run_local"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        figures = milestones(ui_url, start)
        return {**figures, **run_timeline(ui_url, started_wall)}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def measure_train_first(workdir: Path) -> dict:
    volume = workdir / "train-first"
    env, _ = ports_env(volume)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "train", "--starter", "--if-empty"], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with running_system(volume, free_port(), free_port(), free_port(),
                        log_dir=workdir / "logs") as system:
        return milestones(system.url, start)


def measure_inference_worker(volume: Path) -> float:
    start = time.monotonic()
    with running(gunicorn("inference", volume, free_port(), log_path=volume / ".bench.log")):
        return time.monotonic() - start


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def measure_container(image: str, port: int, health: str, volume: Path) -> float | str:
    if docker("image", "inspect", image).returncode != 0:
        return f"no image {image} (make images)"
    host_port = free_port()
    start = time.monotonic()
    started = docker("run", "--detach", "--rm", "-p", f"127.0.0.1:{host_port}:{port}",
                     "-v", f"{volume}:/models", "-e", "MODEL_DIR=/models", image)
    if started.returncode != 0:
        return f"docker run failed: {started.stderr.strip()[:200]}"
    container = started.stdout.strip()
    try:
        url = f"http://127.0.0.1:{host_port}{health}"
        return wait_until(lambda: http(url)[0] == 200, start, 120)
    finally:
        docker("rm", "--force", container)


def measure_containers(volume: Path) -> dict:
    try:
        if docker("info").returncode != 0:
            return {"skipped": "Docker's engine does not answer (make dockerd)"}
    except FileNotFoundError:
        return {"skipped": "no docker command"}
    return {"inference": measure_container(f"digits-inference:{IMAGE_TAG}", 8000, "/readyz",
                                           volume),
            "train": measure_container(f"digits-train:{IMAGE_TAG}", 8001, "/healthz", volume)}


def seconds(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def print_table(results: dict[str, list[dict]]) -> None:
    print("\n| order | page answers | model listed | first prediction | starter accuracy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, rounds in results.items():
        accuracy = [r["starter accuracy"] for r in rounds if r.get("starter accuracy")]
        shown = f"{statistics.median(accuracy):.2%}" if accuracy else "–"
        print(f"| {label} | {seconds([r['page'] for r in rounds])} s "
              f"| {seconds([r['model listed'] for r in rounds])} s "
              f"| {seconds([r['first prediction'] for r in rounds])} s | {shown} |")
    make_run = results.get("make run (serve first)")
    if make_run:
        parts = [key for key in ("job started", "epochs", "run finished")
                 if all(key in r for r in make_run)]
        print("\nmake run, where the wait goes (from the starter's run record): "
              + ", ".join(f"{key} {seconds([r[key] for r in make_run])} s" for key in parts))
    before = results.get("train first (before)")
    if make_run and before:
        ratio = (statistics.median(r["page"] for r in before)
                 / statistics.median(r["page"] for r in make_run))
        print(f"\nThe page answers {ratio:.1f}× sooner with the services started first.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-train-first", action="store_true")
    parser.add_argument("--skip-containers", action="store_true")
    args = parser.parse_args()

    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    results: dict[str, list[dict]] = {"make run (serve first)": []}
    if not args.skip_train_first:
        results["train first (before)"] = []
    with tempfile.TemporaryDirectory(prefix="digits-bench-startup-") as tmp:
        workdir = Path(tmp)
        for round_number in range(1, args.rounds + 1):
            # Interleaved, so a change in the machine's load touches both orders alike.
            for label, measure in (("make run (serve first)", measure_make_run),
                                   ("train first (before)", measure_train_first)):
                if label not in results:
                    continue
                figures = measure(workdir)
                results[label].append(figures)
                print(f"round {round_number} {label}: " + ", ".join(
                    f"{key} {value:.1f} s" if key != "starter accuracy" else f"{key} {value:.4f}"
                    for key, value in figures.items()), flush=True)
                volume = workdir / ("make-run" if "make run" in label else "train-first")
                if not (workdir / "one-model").exists():
                    shutil.copytree(volume, workdir / "one-model",
                                    ignore=shutil.ignore_patterns("runs", ".*"))
                shutil.rmtree(volume)
        print_table(results)

        one_model = workdir / "one-model"
        worker = [measure_inference_worker(one_model) for _ in range(3)]
        print(f"\ninference under gunicorn, one model on the volume, start to /readyz: "
              f"{seconds(worker)} s (median of 3)")
        if not args.skip_containers:
            for name, figure in measure_containers(one_model).items():
                shown = f"{figure:.1f} s" if isinstance(figure, float) else figure
                print(f"container {name}: docker run → healthy: {shown}")
    print(f"\nload average after: {load()}")
    print("goals: page ≤ 10 s, first prediction ≤ 20 s, each container healthy ≤ 10 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
