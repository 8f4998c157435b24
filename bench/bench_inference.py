"""`make bench`: the inference service against its peers and a seed-style reference, in one run.

1. A model: the newest in MODEL_DIR (default ./model-volume), else one trained now on mnist-5k
   with the train CLI into a temporary volume.
2. The same request bodies for everyone: a 28×28 MNIST test digit as a PNG (multipart field
   `image`; KServe, which takes JSON only, gets the same PNG as JSON base64); a 280×280
   photo-like PNG of the same digit (dark ink on light paper, noise) as JSON base64, a person's
   upload of a photo; the same digit drawn the way the page's pad draws it (strokes, white on
   black, 280×280 PNG; bench/handwriting/drawn.py) as a JSON data URL, what the pad sends; and
   for the batch form, 32 such 28×28 PNGs in one JSON request.
3. All at once, on the same model: the service under its real gunicorn command, directly and
   through nginx with the ui's template (the page's path); KServe's Python model server
   (`kserve` 0.21, 2 workers) and a plain FastAPI + uvicorn app (2 workers), both from their
   own virtual environment (bench/peers/), both calling this project's `preprocess` and the
   same traced forward function; and bench/reference_server.py, the seed-style server.
4. `wrk` at concurrency 1 and 8 against each, in interleaved rounds (the CPU is shared: a busy
   moment then hurts every target alike): the median requests/s, p50 and p99 over the rounds,
   the ratios; and each gunicorn worker's share of the requests (from its own Prometheus
   counter file), directly and through nginx.
5. The batch form against the in-process ceiling: decode + preprocess + batched forward (32),
   images/s, in this one process, no HTTP.

`--levers` instead measures the service's variants side by side (worker class, processes ×
threads, one shared listening socket, micro-batching, TFLite, the same app under granian; nginx
in front of the first as the page has it, without its in-memory body buffer, and with a new
upstream connection per request) and, in-process, XLA for the forward call and the multipart
parser's cost.

    python bench/bench_inference.py [--duration 4] [--rounds 3] [--levers] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.handwriting import drawn  # noqa: E402 (after the path)
from bench.person_upload import as_person_upload  # noqa: E402 (after the path)
from scripts.launcher import (  # noqa: E402 (after the path)
    Process,
    free_port,
    gunicorn,
    nginx_process,
    running,
    wait_until_ready,
)

PEER_VENV = Path.home() / ".cache" / "digits" / "bench-venvs" / "kserve-0.21"
PEER_REQUIREMENTS = REPO / "bench" / "peers" / "requirements.txt"
BOUNDARY = "digitsbench"
BATCH = 32
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "%(content_type)s"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*all"); f:close()
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.timeout
  io.write(string.format("RESULT %%d %%d %%f %%f %%d %%d\\n", summary.requests, summary.duration,
           latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
"""


def load_average() -> str:
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def find_or_train_model(model_dir: Path, scratch: Path) -> tuple[Path, str]:
    models = sorted((p for p in model_dir.glob("*.keras") if not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    if models:
        return model_dir, models[0].stem
    volume = scratch / "volume"
    volume.mkdir()
    print(f"no model in {model_dir}: training one on mnist-5k (about a minute)...", flush=True)
    env = dict(os.environ, MODEL_DIR=str(volume), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-m", "train", "--dataset", "mnist-5k", "--architecture",
                    "simple", "--epochs", "12", "--name", "bench"], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return volume, "bench"


# ------------------------------------------------------------------ request bodies


def png(pixels, mode: str = "L") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def multipart_body(image: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"digit.png\"\r\nContent-Type: image/png\r\n\r\n").encode() \
        + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def b64(image: bytes) -> str:
    return base64.b64encode(image).decode("ascii")


class Bodies:
    """Every request body of the run, written to files for wrk; `label` is the digit."""

    def __init__(self, scratch: Path):
        import numpy as np

        from train.datasets import load_dataset

        dataset = load_dataset("mnist-5k", scratch)
        self.label = int(dataset.y_test[0])
        self.mnist_png = png(dataset.x_test[0])
        self.photo_png = as_person_upload(dataset.x_test[0], np.random.default_rng(20240607))
        self.pad_png = drawn.draw(dataset.x_test[0], np.random.default_rng(20241201))
        self.batch_pngs = [png(pixels) for pixels in dataset.x_test[:BATCH]]
        self.batch_labels = [int(y) for y in dataset.y_test[:BATCH]]
        multipart_type = f"multipart/form-data; boundary={BOUNDARY}"
        self.files = {
            "mnist28-multipart": (multipart_type, multipart_body(self.mnist_png)),
            "mnist28-json": ("application/json",
                             json.dumps({"image": b64(self.mnist_png)}).encode()),
            "photo280-json": ("application/json",
                              json.dumps({"image": b64(self.photo_png)}).encode()),
            # What the page's drawing pad sends: its PNG, white strokes on black, as a data URL.
            "pad280-json": ("application/json", json.dumps(
                {"image": "data:image/png;base64," + b64(self.pad_png)}).encode()),
            # The same PNG as plain base64, for the seed-style reference, which reads only that.
            "pad280-plain-json": ("application/json",
                                  json.dumps({"image": b64(self.pad_png)}).encode()),
            "batch32-json": ("application/json",
                             json.dumps({"images": [b64(p) for p in self.batch_pngs]}).encode()),
        }
        self.scripts = {}
        for name, (content_type, body) in self.files.items():
            body_path = scratch / f"{name}.body"
            body_path.write_bytes(body)
            script = scratch / f"{name}.lua"
            script.write_text(WRK_SCRIPT % {"content_type": content_type, "body": body_path})
            self.scripts[name] = script

    def size(self, name: str) -> int:
        return len(self.files[name][1])


# ------------------------------------------------------------------ wrk


def wrk(url: str, script: Path, connections: int, duration: int, warm_up: bool) -> dict:
    threads = min(connections, 2)
    if warm_up:  # connection set-up, lazy imports, CPU caches
        subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", "-d2s", "-s", str(script),
                        url], capture_output=True, check=True)
    result = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                             "--timeout", "10s", "-s", str(script), url],
                            capture_output=True, text=True, check=True)
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+) (\d+)", result.stdout)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}\n{result.stderr}")
    count, micros, p50, p99, errors, non_2xx = match.groups()
    return {"rps": int(count) / (int(micros) / 1e6), "p50_ms": float(p50) / 1000,
            "p99_ms": float(p99) / 1000, "requests": int(count), "errors": int(errors),
            "non_2xx": int(non_2xx)}


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def median_run(runs: list[dict]) -> dict:
    merged = {"rps": median(r["rps"] for r in runs), "p50_ms": median(r["p50_ms"] for r in runs),
              "p99_ms": median(r["p99_ms"] for r in runs),
              "requests": sum(r["requests"] for r in runs),
              "errors": sum(r["errors"] for r in runs),
              "non_2xx": sum(r["non_2xx"] for r in runs), "rounds": len(runs),
              "rps_all": [round(r["rps"], 1) for r in runs]}
    shares = [r["shares"] for r in runs if r.get("shares")]
    if shares:
        merged["shares"] = shares  # per round: each worker's share, largest first
    return merged


# ------------------------------------------------------------------ per-worker shares


def worker_counts(metrics_dir: Path) -> dict[int, float]:
    """Predictions per worker pid, from each worker's Prometheus counter file."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in glob.glob(str(metrics_dir / "counter_*.db")):
        pid = int(re.search(r"counter_(\d+)\.db$", path).group(1))
        counts[pid] = sum(value for key, value, *_ in MmapedDict.read_all_values_from_file(path)
                          if json.loads(key)[1] == "inference_predictions_total")
    return counts


def shares_between(before: dict[int, float], after: dict[int, float]) -> list[float]:
    done = {pid: after[pid] - before.get(pid, 0) for pid in after}
    total = sum(done.values())
    if not total:
        return []
    return sorted((round(n / total, 3) for n in done.values()), reverse=True)


# ------------------------------------------------------------------ targets


class Target:
    """One thing to measure: a base URL, the path and body it takes for each kind of body."""

    def __init__(self, name: str, base: str, routes: dict[str, tuple[str, str]],
                 metrics_dir: Path | None = None):
        self.name = name
        self.base = base
        self.routes = routes  # body kind -> (path, body file name)
        self.metrics_dir = metrics_dir

    def measure(self, kind: str, bodies: Bodies, connections: int, duration: int,
                warm_up: bool) -> dict:
        path, body = self.routes[kind]
        before = worker_counts(self.metrics_dir) if self.metrics_dir else None
        run = wrk(self.base + path, bodies.scripts[body], connections, duration, warm_up)
        if self.metrics_dir:
            run["shares"] = shares_between(before, worker_counts(self.metrics_dir))
        return run


def service_process(name: str, model_dir: Path, model_name: str, scratch: Path,
                    extra: dict[str, str] | None = None,
                    server: list[str] | None = None) -> tuple[Process, Path]:
    """The service under its real gunicorn command, or under `server` (the same app; `{port}`
    in it is replaced by the port)."""
    metrics_dir = scratch / f"metrics-{name}"
    metrics_dir.mkdir()
    process = gunicorn("inference", model_dir, free_port(), log_path=scratch / f"{name}.log",
                       extra_env={"DEFAULT_MODEL": model_name,
                                  "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                                  **(extra or {})})
    if server:
        port = process.base_url.rsplit(":", 1)[1]
        process.args = [arg.replace("{port}", port) for arg in server]
    return process, metrics_dir


SERVICE_ROUTES = {"mnist28": ("/api/predict", "mnist28-multipart"),
                  "photo280": ("/api/predict", "photo280-json"),
                  "pad280": ("/api/predict", "pad280-json"),
                  "batch32": ("/api/predict", "batch32-json")}


def ensure_peer_python() -> tuple[Path | None, str]:
    """The peers' virtual environment's Python, made on first use; or None and why not."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".installed"
    if python.is_file() and marker.is_file() \
            and marker.read_text() == PEER_REQUIREMENTS.read_text():
        return python, "ready"
    print(f"making the peers' environment {PEER_VENV} (kserve 0.21, TensorFlow: a few "
          "minutes, once)...", flush=True)
    try:
        base_python = shutil.which("python3.11") or shutil.which("python3") or "python3"
        subprocess.run([base_python, "-m", "venv", str(PEER_VENV)], check=True,
                       capture_output=True, text=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, capture_output=True)
        subprocess.run([*pip, "-r", str(PEER_REQUIREMENTS)], check=True, capture_output=True,
                       text=True)
    except subprocess.CalledProcessError as exc:
        return None, f"pip failed: {(exc.stderr or '')[-600:]}"
    marker.write_text(PEER_REQUIREMENTS.read_text())
    return python, "installed"


def peer_process(kind: str, python: Path, model_path: Path, scratch: Path) -> Process:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = REPO / "bench" / "peers" / f"{kind}_peer.py"
    health = base + (f"/v1/models/{model_path.stem}" if kind == "kserve" else "/healthz")
    return Process(name=kind, args=[str(python), str(script), str(model_path), str(port), "2"],
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"),
                   health_url=health, log_path=scratch / f"{kind}.log", base_url=base)


def warm(url: str, body: tuple[str, bytes], label: int | None, seconds: float = 120) -> None:
    """Requests on fresh connections until 20 in a row answer right and quickly (every worker
    has its model loaded and warm)."""
    content_type, data = body
    deadline, good = time.monotonic() + seconds, 0
    while good < 20:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} is not answering quickly after {seconds:.0f} s")
        started = time.perf_counter()
        try:
            answer = requests.post(url, data=data, headers={"Content-Type": content_type},
                                   timeout=60)
        except requests.RequestException:
            good = 0
            time.sleep(0.5)
            continue
        fast = time.perf_counter() - started < 0.5
        if answer.status_code != 200:
            raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
        digit = answer.json().get("digit")
        if label is not None and digit != label:
            raise RuntimeError(f"{url} answered digit {digit}, expected {label}")
        good = good + 1 if fast else 0


# ------------------------------------------------------------------ in-process measurements


class Ceiling:
    """Decode + preprocess + batched forward (32 per call) in this one process, no HTTP: what
    the batch form is measured against. Measured once per round, between the targets' runs,
    so that it sees the same machine; the median is reported."""

    def __init__(self, model_path: Path, images: list[bytes]):
        from inference.runtime import load
        from inference.volume import ModelVolume

        self.forward = load(model_path).forward  # as the service loads it
        # The preprocessing the service applies to this model (its metadata's version).
        self.version = ModelVolume(model_path.parent).preprocessing_version_of(model_path.stem)
        self.images = images
        self.runs: list[float] = []
        self.preprocess_us: list[float] = []

    def one_batch(self):
        import numpy as np

        from inference.preprocess import preprocess

        return self.forward(np.stack([preprocess(image, self.version).image
                                      for image in self.images]))

    def measure(self, seconds: float = 3.0) -> None:
        from inference.preprocess import preprocess

        self.one_batch()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.one_batch()
            done += len(self.images)
        self.runs.append(done / (time.perf_counter() - started))
        started = time.perf_counter()
        for image in self.images * 5:
            preprocess(image, self.version)
        self.preprocess_us.append((time.perf_counter() - started) / (5 * len(self.images)) * 1e6)
        print(f"  in-process ceiling: {self.runs[-1]:.0f} images/s", flush=True)

    def result(self) -> dict:
        return {"images_per_s": median(self.runs), "preprocess_us": median(self.preprocess_us),
                "images_per_s_all": [round(r) for r in self.runs]}


def forward_levers(model_path: Path, bodies: Bodies) -> dict:
    """In-process: the forward call with and without XLA (jit_compile), and what parsing a
    multipart body costs in Werkzeug with one boundary for every request and a new one each."""
    import numpy as np

    from inference.preprocess import preprocess
    from inference.runtime import load_compiled, load_lite

    results = {}
    images = np.stack([preprocess(p).image for p in bodies.batch_pngs])
    outputs = {}
    loaders = {"traced": lambda: load_compiled(model_path, tflite=False),
               "xla": lambda: load_compiled(model_path, jit_compile=True, tflite=False),
               "tflite": lambda: load_compiled(model_path, tflite=True)}
    if model_path.with_suffix(".tflite").is_file():  # the copy train saved: LiteRT
        loaders["litert copy"] = lambda: load_lite(model_path.with_suffix(".tflite").read_bytes())
    for variant, loader in loaders.items():
        forward = loader().forward
        for size in (1, BATCH):
            batch = images[:size]
            forward(batch)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < 1.5:
                forward(batch)
                count += 1
            results[f"forward {variant} batch={size} µs"] = \
                (time.perf_counter() - started) / count * 1e6
        outputs[variant] = np.concatenate([forward(image[None]) for image in images])
    for variant in sorted(outputs.keys() - {"traced"}):
        results[f"{variant} max |Δ| vs traced, one at a time"] = \
            float(np.abs(outputs[variant] - outputs["traced"]).max())

    from werkzeug.wrappers import Request

    from inference.multipart_form import read_parts

    def werkzeug_parse(body: bytes, boundary: str) -> None:
        environ = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(body),
                   "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
                   "CONTENT_LENGTH": str(len(body)), "SERVER_NAME": "bench",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
        Request(environ).files["image"].read()

    def service_parse(body: bytes, boundary: str) -> None:  # python-multipart (the service's)
        read_parts(io.BytesIO(body), boundary, max_parts=80)

    for parser, parse in (("werkzeug", werkzeug_parse), ("python-multipart", service_parse)):
        for label, boundary_of in (("same boundary", lambda i: BOUNDARY),
                                   ("new boundary each",
                                    lambda i: f"----WebKitFormBoundary{i:016d}")):
            cases = [(boundary_of(i), multipart_body(bodies.mnist_png).replace(
                BOUNDARY.encode(), boundary_of(i).encode())) for i in range(2000)]
            started = time.perf_counter()
            for boundary, body in cases:
                parse(body, boundary)
            results[f"{parser} multipart parse, {label} µs"] = \
                (time.perf_counter() - started) / len(cases) * 1e6

    answer = {"model": "m", "digit": 7, "confidence": 0.99, "probabilities": [0.1] * 10,
              "preprocessed": "data:image/png;base64," + "A" * 400}
    started = time.perf_counter()
    for _ in range(20000):
        json.dumps(answer, separators=(",", ":"))
    results["json.dumps of an answer µs"] = (time.perf_counter() - started) / 20000 * 1e6
    text = b64(bodies.photo_png)
    started = time.perf_counter()
    for _ in range(2000):
        json.loads(bodies.files["photo280-json"][1])
        base64.b64decode(text, validate=True)
    results["json.loads + b64decode of the photo body µs"] = \
        (time.perf_counter() - started) / 2000 * 1e6
    return results


# ------------------------------------------------------------------ the runs


def measure_rounds(targets: list[Target], plan: list[tuple[str, int]], bodies: Bodies,
                   rounds: int, duration: int, between=None) -> dict[str, dict]:
    runs: dict[str, list[dict]] = {}
    for round_number in range(1, rounds + 1):
        if between is not None:
            between()
        for target in targets:
            for kind, connections in plan:
                if kind not in target.routes:
                    continue
                key = f"{target.name} {kind} c={connections}"
                run = target.measure(kind, bodies, connections, duration,
                                     warm_up=round_number == 1)
                runs.setdefault(key, []).append(run)
                print(f"  round {round_number} {key}: {format_run(run)}", flush=True)
    return {key: median_run(measured) for key, measured in runs.items()}


def main_comparison(args, bodies: Bodies, model_dir: Path, model_name: str, scratch: Path,
                    results: dict) -> None:
    model_path = model_dir / f"{model_name}.keras"
    peer_python, peer_status = (None, "skipped (--no-peers)") if args.no_peers \
        else ensure_peer_python()
    results["peers"] = str(peer_status) if peer_python is None else f"{PEER_VENV} ({peer_status})"
    if peer_python is None:
        print(f"peers not measured: {peer_status}", flush=True)
    with ExitStack() as stack:
        service, metrics_dir = service_process("service", model_dir, model_name, scratch)
        processes = [service]
        reference_port = free_port()
        reference = Process(
            name="reference", args=[sys.executable, str(REPO / "bench" / "reference_server.py"),
                                    str(model_path), str(reference_port)],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            health_url=f"http://127.0.0.1:{reference_port}/healthz",
            log_path=scratch / "reference.log", base_url=f"http://127.0.0.1:{reference_port}")
        processes.append(reference)
        peers = {}
        if peer_python is not None:
            for kind in ("kserve", "fastapi"):
                peers[kind] = peer_process(kind, peer_python, model_path, scratch)
                processes.append(peers[kind])
        nginx = stack.enter_context(nginx_process(free_port(), int(service.base_url.rsplit(
            ":", 1)[1]), free_port(), log_dir=scratch / "nginx"))
        processes.append(nginx)
        start_all(stack, processes)
        targets = [Target("service", service.base_url, SERVICE_ROUTES, metrics_dir),
                   Target("service via nginx", nginx.base_url, SERVICE_ROUTES, metrics_dir)]
        if "kserve" in peers:
            path = f"/v1/models/{model_name}:predict"
            targets.append(Target("kserve", peers["kserve"].base_url,
                                  {"mnist28": (path, "mnist28-json"),
                                   "photo280": (path, "photo280-json"),
                                   "pad280": (path, "pad280-json")}))
        if "fastapi" in peers:
            targets.append(Target("fastapi", peers["fastapi"].base_url,
                                  {"mnist28": ("/api/predict", "mnist28-multipart"),
                                   "photo280": ("/api/predict", "photo280-json"),
                                   "pad280": ("/api/predict", "pad280-json")}))
        targets.append(Target("reference", reference.base_url,
                              {"mnist28": ("/api/predict", "mnist28-multipart"),
                               "photo280": ("/api/predict", "photo280-json"),
                               "pad280": ("/api/predict", "pad280-plain-json")}))
        for target in targets:
            for kind, (path, body) in target.routes.items():
                if kind != "batch32":
                    # The reference has no polarity or centring: it misreads the photo.
                    label = None if target.name == "reference" else bodies.label
                    warm(target.base + path, bodies.files[body], label)
        check_batch(service.base_url, bodies)
        print(f"all ready · {load_average()}", flush=True)
        plan = [(kind, c) for kind in ("mnist28", "photo280", "pad280") for c in (1, 8)]
        plan += [("batch32", 1), ("batch32", 4)]
        ceiling = Ceiling(model_path, bodies.batch_pngs)
        results["runs"] = measure_rounds(targets, plan, bodies, args.rounds, args.duration,
                                         between=ceiling.measure)
    results["ceiling"] = ceiling.result()


def start_all(stack: ExitStack, processes: list[Process], timeout: float = 600) -> None:
    """Start every process at once (each stopped when the stack closes), then wait for all."""
    for process in processes:
        process.start()
        stack.callback(process.stop)
    wait_until_ready(processes, timeout)


def check_batch(base: str, bodies: Bodies) -> None:
    answer = requests.post(base + "/api/predict", data=bodies.files["batch32-json"][1],
                           headers={"Content-Type": "application/json"}, timeout=60).json()
    digits = [p.get("digit") for p in answer["predictions"]]
    right = sum(d == y for d, y in zip(digits, bodies.batch_labels, strict=True))
    if right < BATCH - 2:
        raise RuntimeError(f"the batch answer is wrong for {BATCH - right} of {BATCH} images")


LEVER_VARIANTS = {
    "gthread 2×4, reuse_port (default)": {},
    "gthread 2×4, one shared socket": {"INFERENCE_REUSE_PORT": "0"},
    "gthread 2×1": {"INFERENCE_THREADS": "1"},
    "gthread 2×2": {"INFERENCE_THREADS": "2"},
    # gunicorn's heartbeat touches a temporary file on every turn of a worker's loop; its docs
    # advise a tmpfs for it (/tmp is on disk here and in many images).
    "worker tmp dir /dev/shm": {"GUNICORN_CMD_ARGS": "--worker-tmp-dir /dev/shm"},
    "gthread 2×8": {"INFERENCE_THREADS": "8"},
    "gthread 3×2": {"WEB_CONCURRENCY": "3", "INFERENCE_THREADS": "2"},
    "sync 2": {"GUNICORN_CMD_ARGS": "--worker-class sync"},
    "sync 3": {"GUNICORN_CMD_ARGS": "--worker-class sync", "WEB_CONCURRENCY": "3"},
    "micro-batching 0": {"BATCH_WINDOW_MS": "0"},
    "TFLite for single images": {"INFERENCE_TFLITE": "1"},
    # One thread per worker switching between connections as greenlets: no hand-off between
    # gthread's poller and its pool (gevent is in requirements-dev.txt).
    "gevent 2": {"GUNICORN_CMD_ARGS": "--worker-class gevent --worker-connections 64"},
    "gevent 2, no micro-batching": {"GUNICORN_CMD_ARGS": "--worker-class gevent "
                                                         "--worker-connections 64",
                                    "BATCH_WINDOW_MS": "off"},
    "granian WSGI 2×4": {},
}
# Variants that run the same Flask app under another server than gunicorn. granian (a Rust HTTP
# server for Python, from requirements-dev.txt) asks what gunicorn's gthread loop costs per
# request; gunicorn.conf.py's hooks (Prometheus' multiprocess clean-up, the boot-time load wait)
# do not run under it, so it is a measurement, not a deployment.
LEVER_SERVERS = {
    "granian WSGI 2×4": [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi",
                         "--factory", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2",
                         "--blocking-threads", "4", "inference:create_app"],
}


def default_body_buffer(template: Path, scratch: Path) -> Path:
    """The ui's template without its in-memory body buffer."""
    variant = scratch / "default-body-buffer.conf.template"
    variant.write_text("\n".join(line for line in template.read_text().splitlines()
                                 if "client_body_buffer_size" not in line))
    return variant


def new_connection_per_request(template: Path, scratch: Path) -> Path:
    """The ui's template with inference passed to by address, without its upstream block: a new
    connection for every request (what the page had before keep-alive)."""
    variant = scratch / "new-connection.conf.template"
    text = template.read_text()
    upstream = text[text.index("upstream inference {"):]
    upstream = upstream[: upstream.index("}") + 1]
    variant.write_text(text.replace(upstream, "").replace(
        "proxy_pass http://inference;", "proxy_pass http://${INFERENCE_ADDRESS};"))
    return variant


def levers(args, bodies: Bodies, model_dir: Path, model_name: str, scratch: Path,
           results: dict) -> None:
    wanted = [v.strip() for v in args.variants.split(";")] if args.variants else \
        list(LEVER_VARIANTS)
    import scripts.launcher as launcher

    with ExitStack() as stack:
        targets, processes = [], []
        for number, name in enumerate(wanted):
            process, metrics_dir = service_process(f"variant{number}", model_dir, model_name,
                                                   scratch, LEVER_VARIANTS[name],
                                                   LEVER_SERVERS.get(name))
            processes.append(process)
            targets.append(Target(name, process.base_url, SERVICE_ROUTES, metrics_dir))
        start_all(stack, processes)
        for number, (process, name) in enumerate(zip(processes, wanted, strict=True)):
            metrics_dir = targets[number].metrics_dir
            if number == 0 and not args.no_nginx:
                # nginx in front of the first variant: the ui's template, the same without its
                # in-memory body buffer (nginx's default: bodies over 16 KB to a file), and the
                # same with a new connection to inference per request (no upstream block).
                port = int(process.base_url.rsplit(":", 1)[1])
                original = launcher.NGINX_TEMPLATE
                for label, template in (
                        ("via nginx", original),
                        ("via nginx, default body buffer", default_body_buffer(original, scratch)),
                        ("via nginx, a new connection per request",
                         new_connection_per_request(original, scratch))):
                    launcher.NGINX_TEMPLATE = template
                    try:
                        nginx = stack.enter_context(nginx_process(free_port(), port,
                                                                  free_port()))
                    finally:
                        launcher.NGINX_TEMPLATE = original
                    stack.enter_context(running(nginx, timeout=60))
                    targets.append(Target(f"{name} {label}", nginx.base_url, SERVICE_ROUTES,
                                          metrics_dir))
        for target in targets:
            warm(target.base + "/api/predict", bodies.files["mnist28-multipart"], bodies.label)
        print(f"all ready · {load_average()}", flush=True)
        plan = [("mnist28", 1), ("mnist28", 8), ("photo280", 8)]
        results["runs"] = measure_rounds(targets, plan, bodies, args.rounds, args.duration)
    results["in_process"] = forward_levers(model_dir / f"{model_name}.keras", bodies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds over all targets (the median is reported)")
    parser.add_argument("--levers", action="store_true",
                        help="measure the service's variants instead (docs/benchmarks.md)")
    parser.add_argument("--variants", help="with --levers: which, separated by ';'")
    parser.add_argument("--no-peers", action="store_true", help="without KServe and FastAPI")
    parser.add_argument("--no-nginx", action="store_true",
                        help="with --levers: without the nginx variants")
    parser.add_argument("--model-dir", type=Path,
                        default=Path(os.environ.get("MODEL_DIR", REPO / "model-volume")))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench` installs it (apt-get install wrk)")
        return 2

    results: dict = {"load_before": load_average(), "cores": os.cpu_count(),
                     "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp:
        scratch = Path(tmp)
        model_dir, model_name = find_or_train_model(args.model_dir, scratch)
        results["model"] = str(model_dir / f"{model_name}.keras")
        bodies = Bodies(scratch)
        print(f"model {results['model']} · bodies: 28×28 PNG multipart "
              f"{bodies.size('mnist28-multipart')} B, 280×280 PNG JSON "
              f"{bodies.size('photo280-json')} B, the pad's 280×280 drawing JSON "
              f"{bodies.size('pad280-json')} B, batch of {BATCH} JSON "
              f"{bodies.size('batch32-json')} B · {results['load_before']} · "
              f"{os.cpu_count()} cores", flush=True)
        if args.levers:
            levers(args, bodies, model_dir, model_name, scratch, results)
        else:
            main_comparison(args, bodies, model_dir, model_name, scratch, results)
    results["load_after"] = load_average()
    (report_levers if args.levers else report)(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


# ------------------------------------------------------------------ reports


def format_run(run: dict) -> str:
    problems = f" ({run['errors']} errors, {run['non_2xx']} non-2xx!)" \
        if run["errors"] or run["non_2xx"] else ""
    shares = run.get("shares")
    if shares and isinstance(shares[0], float):
        shares = "   workers " + "/".join(f"{s:.0%}" for s in shares)
    elif shares:
        shares = "   workers " + " ".join("/".join(f"{s:.0%}" for s in r) for r in shares)
    return (f"{run['rps']:8.1f} req/s   p50 {run['p50_ms']:7.2f} ms   "
            f"p99 {run['p99_ms']:7.2f} ms{problems}{shares or ''}")


def report(results: dict) -> None:
    runs = results["runs"]
    print("\n=== inference benchmark (wrk; same model and bodies; median of the rounds) ===")
    for key, run in runs.items():
        print(f"{key:36s} {format_run(run)}")

    def rps(name, kind, c):
        run = runs.get(f"{name} {kind} c={c}")
        return run["rps"] if run else None

    print()
    verdicts = []
    for kind in ("mnist28", "photo280", "pad280"):
        for c in (1, 8):
            service = rps("service", kind, c)
            for other, goal in (("reference", 50 if c == 8 else None),
                                ("kserve", 1.5 if c == 8 else 1.2),
                                ("fastapi", None), ("service via nginx", None)):
                theirs = rps(other, kind, c)
                if not theirs:
                    continue
                ratio = (theirs / service) if other == "service via nginx" else service / theirs
                line = f"{kind} c={c}: service / {other} = {ratio:.2f}×"
                if other == "service via nginx":
                    line = f"{kind} c={c}: via nginx / direct = {ratio:.2f}"
                    goal_text = "MET" if ratio >= 0.85 else "NOT MET"
                    line += f" (goal ≥ 0.85: {goal_text})"
                elif goal:
                    line += f" (goal ≥ {goal}×: {'MET' if ratio >= goal else 'NOT MET'})"
                print(line)
                verdicts.append(line)
            p50 = runs[f"service {kind} c=1"]["p50_ms"]
            if c == 1:
                print(f"{kind} c=1: service p50 {p50:.2f} ms (goal ≤ 3 ms: "
                      f"{'MET' if p50 <= 3 else 'NOT MET'})")
    ceiling = results["ceiling"]
    print(f"in-process ceiling (1 process, decode+preprocess+forward in batches of {BATCH}, no "
          f"HTTP): {ceiling['images_per_s']:.0f} images/s; preprocess alone "
          f"{ceiling['preprocess_us']:.0f} µs/image")
    for c in (1, 4):
        batch = rps("service", "batch32", c)
        if batch:
            share = batch * BATCH / ceiling["images_per_s"]
            print(f"batch of {BATCH}, c={c}: {batch * BATCH:.0f} images/s = {share:.0%} of the "
                  f"ceiling (goal ≥ 60%: {'MET' if share >= 0.6 else 'NOT MET'})")
    print(f"peers: {results.get('peers')}")
    print(f"{results['load_before']} before, {results['load_after']} after "
          f"(the CPU is shared: figures vary with it)")


def report_levers(results: dict) -> None:
    print("\n=== service variants (wrk; median of the rounds) ===")
    for key, run in results["runs"].items():
        print(f"{key:50s} {format_run(run)}")
    print("\n=== in-process ===")
    for key, value in results["in_process"].items():
        print(f"{key:50s} {value:10.3g}")
    print(f"{results['load_before']} before, {results['load_after']} after")


if __name__ == "__main__":
    sys.exit(main())
