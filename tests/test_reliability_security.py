"""Security checks, against the services under their real gunicorn command: no debug mode
anywhere; uploads never written to disk; no image bytes or tokens in the logs; the train token on
every mutating route; CORS off; no traceback or server path in any error body.
"""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import REPO, SEED_MODEL_NAME, copy_seed_model, run_service
from inference_support import mnist_test_digits, png_bytes
from PIL import Image, PngImagePlugin

TOKEN = "sec-token-7f3a9c1e5b"
EVIL_ORIGIN = "http://evil.example"


@pytest.fixture(scope="module")
def volume(seed_model_dir, tmp_path_factory) -> Path:
    volume = tmp_path_factory.mktemp("security-volume")
    copy_seed_model(seed_model_dir, volume)
    # Broken model files, so that their 503s are among the error bodies checked.
    (volume / "random-bytes.keras").write_bytes(np.random.default_rng(2).bytes(4096))
    with zipfile.ZipFile(volume / "not-a-model.keras", "w") as archive:
        archive.writestr("config.json", "{\"class_name\": \"Nothing\"}")
    return volume


@pytest.fixture(scope="module")
def inference(volume, tmp_path_factory):
    with run_service("inference", volume, tmp_path_factory.mktemp("security-inference-logs"),
                     ready_path="/readyz", DEFAULT_MODEL=SEED_MODEL_NAME) as server:
        yield server


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    volume = tmp_path_factory.mktemp("security-train-volume")
    with run_service("train", volume, tmp_path_factory.mktemp("security-train-logs"),
                     TRAIN_API_TOKEN=TOKEN) as server:
        server.volume = volume
        yield server


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory) -> tuple[bytes, int]:
    images, labels = mnist_test_digits(tmp_path_factory.mktemp("security-datasets"))
    return png_bytes(images[0]), int(labels[0])


def workers(server) -> list[int]:
    """The gunicorn master's children: the worker processes."""
    master = server.popen.pid
    return [int(pid) for pid in
            Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def open_files(pid: int) -> set[str]:
    """What the process' file descriptors point at that is a file (not a socket, pipe, device)."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.startswith("/dev/"):
            targets.add(target)
    return targets


def queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(tx_queue, rx_queue) of the TCP connection local_port → remote_port (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (local_port, remote_port):
            tx_queue, rx_queue = (int(value, 16) for value in fields[4].split(":"))
            return tx_queue, rx_queue
    return None


def delivered_and_read(sock: socket.socket) -> bool:
    """Everything sent on `sock` has reached the server and its process has read it."""
    client_port, server_port = sock.getsockname()[1], sock.getpeername()[1]
    return queues(client_port, server_port) == queues(server_port, client_port) == (0, 0)


# ---------------------------------------------------------------- debug mode


@pytest.mark.reliability("Security", "no debug mode anywhere")
def test_no_debug_mode_anywhere(inference, train, observed):
    # Live: the Werkzeug debugger's console does not exist, an unknown route is our JSON 404.
    for server in (inference, train):
        for path in ("/console", "/no/such/route?__debugger__=yes&cmd=resource&f=style.css"):
            response = requests.get(server.url(path), timeout=10)
            assert response.status_code == 404, response.text[:200]
            assert response.headers["Content-Type"].startswith("application/json")
            assert "Werkzeug" not in response.text and "debugger" not in response.text.lower()
    # In the code and every way the services are run: no debug flag, no reloader, no app.run.
    patterns = [r"debug\s*=\s*True", r"FLASK_DEBUG", r"--debug\b", r"--reload\b",
                r"^\s*reload\s*=\s*True", r"\.run\(\s*debug", r"use_debugger", r"use_reloader",
                r"PROPAGATE_EXCEPTIONS", r"loglevel\s*=\s*['\"]debug"]
    places = [*REPO.glob("inference/**/*.py"), *REPO.glob("train/**/*.py"),
              *REPO.glob("scripts/**/*.py"), *REPO.glob("*/Dockerfile"),
              REPO / "docker-compose.yml", REPO / "Makefile", *REPO.glob("k8s/**/*.yaml")]
    found = [f"{path.relative_to(REPO)}: {line.strip()}" for path in places if path.is_file()
             for line in path.read_text().splitlines()
             if any(re.search(pattern, line) for pattern in patterns)]
    assert not found, found
    observed(f"GET /console and a debugger URL: JSON 404 from both services; no debug flag, "
             f"reloader or Flask dev server in {len(places)} files (code, Dockerfiles, compose, "
             f"Kubernetes manifests, Makefile)")


# ---------------------------------------------------------------- uploads stay in memory


@pytest.mark.reliability("Security", "uploads are never written to disk")
def test_uploads_are_never_written_to_disk(inference, volume, observed):
    """A 2 MB upload is held mid-body while the workers' open files are looked at: Werkzeug's
    default would have spooled anything over 500 KB into a temporary file by then."""
    noise = np.random.default_rng(9).integers(0, 256, (900, 900), dtype=np.uint8)
    image = png_bytes(noise)
    assert len(image) > 700_000
    boundary = "sec-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + image + tail
    split = len(head) + 600_000
    pids = workers(inference)
    before = {pid: open_files(pid) for pid in pids}
    volume_before = sorted(path.name for path in volume.iterdir())
    host, port = inference.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        sock.sendall(body[:split])
        # Wait until the worker has read those 600 KB (both sockets' queues empty), then look.
        deadline = time.monotonic() + 30
        while not delivered_and_read(sock):
            assert time.monotonic() < deadline, "the worker did not read the upload"
            time.sleep(0.05)
        new_files = {pid: open_files(pid) - before[pid] for pid in pids}
        sock.sendall(body[split:])
        reply = sock.makefile("rb").readline().decode()
    assert reply.split()[1] in ("200", "422"), reply
    spooled = sorted({target for targets in new_files.values() for target in targets})
    assert not spooled, f"upload written to: {spooled}"
    assert sorted(path.name for path in volume.iterdir()) == volume_before
    observed(f"a {len(image) // 1024} KiB PNG held after 600 KB: the workers opened no file "
             f"(/proc/<pid>/fd), the volume is unchanged; answered {reply.split()[1]}")


# ---------------------------------------------------------------- logs


@pytest.mark.reliability("Security", "logs never contain image bytes or tokens")
def test_logs_never_contain_image_bytes_or_tokens(inference, train, digit_png, observed):
    image, _ = digit_png
    marker = "PIXELS-MARKER-4b1d"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker * 20)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(image)).save(buffer, "PNG", pnginfo=info)
    marked = buffer.getvalue()
    encoded = base64.b64encode(marked).decode()
    sent = [
        requests.post(inference.url("/api/predict"), files={"image": ("d.png", marked)},
                      timeout=30),
        requests.post(inference.url("/api/predict"), json={"image": encoded}, timeout=30),
        requests.post(inference.url("/api/predict"), timeout=30,
                      json={"image": f"data:image/png;base64,{encoded}"}),
        requests.post(inference.url("/api/predict"), files={"image": ("d.png", marked[:300])},
                      timeout=30),  # a truncated one: an error path
        requests.post(inference.url("/api/predict"), json={"image": encoded[:-7] + "*"},
                      timeout=30),
    ]
    assert [r.status_code for r in sent] == [200, 200, 200, 400, 400]
    authorizations = [f"Bearer {TOKEN}", f"Bearer {TOKEN}-wrong", f"Basic {TOKEN}",
                      "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode(), TOKEN]
    for authorization in authorizations:
        requests.post(train.url("/api/train/runs"), json={"epochs": 0}, timeout=10,
                      headers={"Authorization": authorization})
        requests.get(train.url("/api/train/runs"), timeout=10,
                     headers={"Authorization": authorization})
    inference_log = inference.log_path.read_text(errors="replace")
    train_log = train.log_path.read_text(errors="replace")
    assert inference_log.count('"route": "/api/predict"') >= len(sent), inference_log[-2000:]
    assert train_log.count("/api/train/runs") >= 2 * len(authorizations), train_log[-2000:]
    secrets = {"the image's text": marker, "base64 of the image": encoded[100:160],
               "the start of the base64": encoded[:40], "the raw bytes": marked[60:90].decode(
                   "latin-1"), "the token": TOKEN,
               "base64 of the token": base64.b64encode(TOKEN.encode()).decode()[:16]}
    for what, secret in secrets.items():
        assert secret not in inference_log, f"{what} in the inference log"
        assert secret not in train_log, f"{what} in the train log"
    longest = max((len(run) for run in re.findall(r"[A-Za-z0-9+/=]{60,}",
                                                  inference_log + train_log)), default=0)
    assert longest < 60
    observed(f"{len(sent)} predictions (multipart, base64, data URL, two broken) with a marker in "
             f"the PNG, {2 * len(authorizations)} train requests with the token as Bearer, "
             f"Basic, bare and wrong: {len(inference_log.splitlines())} + "
             f"{len(train_log.splitlines())} log lines hold neither image bytes, base64, the "
             f"marker nor the token")


# ---------------------------------------------------------------- the train token


OPEN_WRITES = {("POST", "/api/feedback")}


def mutating_routes(train) -> list[tuple[str, str]]:
    """Every route of the train service that is not a read: from its spec and its URL map."""
    spec = requests.get(train.url("/openapi.json"), timeout=10).json()
    routes = {(method.upper(), path) for path, item in spec["paths"].items()
              for method in item if method in ("post", "put", "patch", "delete")}
    return sorted(routes)


@pytest.mark.reliability("Security", "the train token guards every mutating route")
def test_the_train_token_guards_every_mutating_route(train, observed):
    from train.app import create_app  # the URL map, to catch a route the spec does not show

    url_map = create_app({"model_dir": train.volume}).url_map
    in_code = {(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
               for rule in url_map.iter_rules()
               for method in rule.methods - {"GET", "HEAD", "OPTIONS"}}
    routes = mutating_routes(train)
    assert in_code == set(routes), in_code ^ set(routes)
    assert {("POST", "/api/retrain_model/"), ("POST", "/api/stop_training/")} <= set(routes)
    # The one mutating route open by design: the page's users send feedback samples without a
    # token, bounded instead (size, rate, count: docs/feedback.md). An empty body is refused as
    # such, not as unauthorised.
    assert set(routes) >= OPEN_WRITES
    for method, path in OPEN_WRITES:
        response = requests.request(method, train.url(path), json={}, timeout=10)
        assert response.status_code == 400, response.text
    routes = [route for route in routes if route not in OPEN_WRITES]
    answers = []
    for method, path in routes:
        url = train.url(path.format(run_id="20990101-000000-abcdef", name="some-model",
                                    sample_id="0" * 24))
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            response = requests.request(method, url, headers=headers, json={}, timeout=10)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
        with_token = requests.request(method, url, json={"epochs": 0}, timeout=10,
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_token.status_code != 401
        answers.append(f"{method} {path}")
    assert requests.get(train.url("/api/train/runs"), timeout=10).json()["runs"] == []
    observed(f"all {len(routes)} mutating routes (from /openapi.json, checked against Flask's URL "
             f"map): 401 unauthorized without a token and with a wrong one, through with it: "
             f"{', '.join(answers)}; open by design, bounded instead: POST /api/feedback")


# ---------------------------------------------------------------- CORS


@pytest.mark.reliability("Security", "CORS is off")
def test_cors_is_off(inference, train, digit_png, observed):
    image, _ = digit_png
    cross = {"Origin": EVIL_ORIGIN}
    preflight = {**cross, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    responses = [
        requests.post(inference.url("/api/predict"), files={"image": ("d.png", image)},
                      headers=cross, timeout=30),
        requests.get(inference.url("/api/models"), headers=cross, timeout=10),
        requests.options(inference.url("/api/predict"), headers=preflight, timeout=10),
        requests.get(train.url("/api/train/runs"), headers=cross, timeout=10),
        requests.options(train.url("/api/train/runs"), headers=preflight, timeout=10),
        requests.options(train.url("/api/retrain_model/"), headers=preflight, timeout=10),
    ]
    for response in responses:
        granted = {name for name in response.headers if name.lower().startswith("access-control")}
        assert not granted, (response.url, granted)
    template = (REPO / "ui" / "nginx" / "default.conf.template").read_text()
    assert "Access-Control" not in template
    observed(f"{len(responses)} cross-origin requests and preflights (Origin {EVIL_ORIGIN}) to "
             f"both services: no Access-Control-* header in any answer; the page's nginx "
             f"config adds none (the page is same-origin)")


# ---------------------------------------------------------------- error bodies


def server_paths(*volumes: Path) -> list[str]:
    paths = {str(REPO), sys.prefix, sys.base_prefix, tempfile.gettempdir() + "/",
             str(Path.home()), *(str(volume) for volume in volumes)}
    return sorted(path for path in paths if len(path) > 1)


@pytest.mark.reliability("Security", "error bodies hold no traceback or file system path")
def test_error_bodies_hold_no_traceback_or_path(inference, train, volume, digit_png, observed):
    image, _ = digit_png
    predict, runs = inference.url("/api/predict"), train.url("/api/train/runs")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    errors = [
        requests.post(predict, files={"image": ("d.png", image)}, data={"model": "random-bytes"},
                      timeout=60),
        requests.post(predict, files={"image": ("d.png", image)}, data={"model": "not-a-model"},
                      timeout=60),
        requests.post(predict, files={"image": ("d.png", image[:200])}, timeout=10),
        requests.post(predict, files={"image": ("d.png", b"GIF89a" + b"\0" * 50)}, timeout=10),
        requests.post(predict, files={"image": ("d.png", b"%PDF-1.4 nothing")}, timeout=10),
        requests.post(predict, json={"image": "!!!"}, timeout=10),
        requests.post(predict, data=b"{", timeout=10, headers={"Content-Type": "application/json"}),
        requests.post(predict, data=b"x" * (6 * 1024 * 1024), timeout=30,
                      headers={"Content-Type": "application/json"}),
        requests.post(predict, files={"image": ("d.png", image)}, data={"model": "nope"},
                      timeout=10),
        requests.get(inference.url("/api/models/nope"), timeout=10),
        requests.get(inference.url("/nope"), timeout=10),
        requests.put(predict, timeout=10),
        requests.post(runs, json={"epochs": "x", "dataset": "nope", "name": "a/b"},
                      headers=bearer, timeout=10),
        requests.post(runs, data="{", headers={**bearer, "Content-Type": "application/json"},
                      timeout=10),
        requests.post(runs, data="x" * 100_000, headers={
            **bearer, "Content-Type": "application/json"}, timeout=10),
        requests.post(runs, json={}, timeout=10),
        requests.get(train.url("/api/train/runs/nope"), timeout=10),
        requests.get(train.url("/api/train/runs/nope/events"), timeout=10),
        requests.delete(train.url("/api/train/models/nope"), headers=bearer, timeout=10),
        requests.post(train.url("/api/stop_training/"), headers=bearer, timeout=10),
        requests.get(train.url("/api/model_accuracy/"), timeout=10),
        requests.put(runs, timeout=10),
    ]
    # Unloadable models are listed with the reason: that text is checked too. Each worker knows
    # the models it tried to load, so ask a few times to hear from both.
    reasons = {model["error"] for _ in range(20)
               for model in requests.get(inference.url("/api/models"), timeout=10).json()["models"]
               if model.get("error")}
    assert reasons
    forbidden = ["Traceback", 'File "', "site-packages", ".py\"", ".py,", *server_paths(
        volume, train.volume)]
    statuses = []
    for response in errors:
        assert response.status_code >= 400, response.url
        assert response.headers["Content-Type"].startswith("application/json"), response.url
        assert set(response.json()) == {"error"}, response.text
        leaks = [text for text in forbidden if text in response.text]
        assert not leaks, (response.url, response.status_code, leaks, response.text[:300])
        statuses.append(response.status_code)
    for reason in reasons:
        leaks = [text for text in forbidden if text in reason]
        assert not leaks, (reason, leaks)
    codes = sorted(set(statuses))
    observed(f"{len(errors)} error answers ({', '.join(map(str, codes))}; corrupt model files, "
             f"broken images, bad JSON, limits, unknown routes and methods, auth, conflicts): "
             f"each JSON with only `error`, none holding a traceback, a source file or any of "
             f"the servers' paths (repository, volumes, Python, temp, home); nor do the "
             f"{len(reasons)} reasons /api/models gives for unloadable models")
