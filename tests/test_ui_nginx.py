"""The ui's nginx config, rendered by the `make run` launcher and served by the real nginx.

Two small stand-in upstreams record what reaches them, so these tests can say exactly which
service a route goes to, that the URI arrives unchanged and that server-sent events are not held
back. The page's static files are checked for inline code and for anything from another site.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import REPO, free_port

from scripts import launcher

STATIC = REPO / "ui" / "static"
TEMPLATE = REPO / "ui" / "nginx" / "default.conf.template"
ISSUE_TEST_IDS = ["model-select", "draw-canvas", "clear-button", "file-input", "result-digit",
                  "result-confidence", "probability-bars", "preprocessed-image", "train-start",
                  "train-stop", "train-progress", "train-state", "models-table"]


class StandIn(ThreadingHTTPServer):
    """An upstream that answers every request with its own name and what it received."""

    daemon_threads = True

    def __init__(self, name: str):
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.name = name
        self.release_events = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


class StandInHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.endswith("/events"):
            return self.stream_events()
        self.answer()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()

    def do_DELETE(self):  # noqa: N802
        self.answer()

    def answer(self):
        body = json.dumps({"service": self.server.name, "method": self.command,
                           "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream_events(self):
        """One small event, then nothing until the test says so: a buffering proxy would sit on
        the first event until the stream ends."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(b'data: {"state": "running", "progress": 0.1}\n\n')
        self.wfile.flush()
        self.server.release_events.wait(timeout=30)
        self.wfile.write(b'data: {"state": "succeeded", "progress": 1.0}\n\n')
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[dict[str, StandIn]]:
    servers = {name: StandIn(name) for name in ("train", "inference")}
    threads = [threading.Thread(target=server.serve_forever, daemon=True)
               for server in servers.values()]
    for thread in threads:
        thread.start()
    yield servers
    for server in servers.values():
        server.release_events.set()
        server.shutdown()
        server.server_close()


def start_nginx(stand_in_ports: tuple[int, int], tmp_dir: Path, max_upload_bytes: int):
    """nginx as `make run` starts it, in front of the given (inference, train) ports."""
    ui_port = free_port()
    context = launcher.nginx_process(ui_port, *stand_in_ports, max_upload_bytes=max_upload_bytes,
                                      log_dir=tmp_dir)
    nginx = context.__enter__()
    nginx.start()
    launcher.wait_until_ready([nginx], timeout=30)
    return f"http://127.0.0.1:{ui_port}", nginx, context


@pytest.fixture(scope="module")
def proxy(stand_ins, tmp_path_factory) -> Iterator[str]:
    url, nginx, context = start_nginx((stand_ins["inference"].port, stand_ins["train"].port),
                                      tmp_path_factory.mktemp("nginx-logs"), 4096)
    yield url
    nginx.stop()
    context.__exit__(None, None, None)


# ------------------------------------------------------------------ static files and headers


def test_healthz(proxy):
    response = requests.get(f"{proxy}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.text.strip() == "ok"


def test_the_page_comes_with_security_headers(proxy):
    response = requests.get(f"{proxy}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_error_answers_carry_the_security_headers_too(proxy):
    response = requests.get(f"{proxy}/no-such-file.html", timeout=5)
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


def test_html_js_and_css_are_revalidated_with_etags(proxy):
    for path in ("/", "/js/app.js", "/css/app.css"):
        first = requests.get(proxy + path, timeout=5)
        assert first.status_code == 200, path
        assert "no-cache" in first.headers["Cache-Control"], path
        again = requests.get(proxy + path, headers={"If-None-Match": first.headers["ETag"]},
                             timeout=5)
        assert again.status_code == 304, path


def test_icons_are_cached_for_a_day(proxy):
    response = requests.get(f"{proxy}/favicon.svg", timeout=5)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "max-age=86400"


@pytest.mark.parametrize("path, content_type", [("/js/train.js", "application/javascript"),
                                                ("/css/app.css", "text/css"),
                                                ("/", "text/html")])
def test_text_files_are_gzipped(proxy, path, content_type):
    response = requests.get(proxy + path, headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert response.headers["Content-Type"].startswith(content_type)
    assert response.headers.get("Content-Encoding") == "gzip"
    assert len(response.content) > 512  # decoded again by requests


# ------------------------------------------------------------------ the reverse proxy

TRAIN_ROUTES = [("GET", "/api/train/options"), ("GET", "/api/train/runs?limit=5"),
                ("POST", "/api/train/runs"), ("POST", "/api/train/runs/abc/stop"),
                ("DELETE", "/api/train/models/some-model"),
                ("POST", "/api/retrain_model/"), ("POST", "/api/stop_training/"),
                ("GET", "/api/training_progress/"), ("GET", "/api/check_model_status/"),
                ("GET", "/api/model_accuracy/"),
                # Feedback (issue 13): the samples and a model's scores are train's.
                ("POST", "/api/feedback"), ("GET", "/api/feedback?label=3&wrong=true"),
                ("GET", "/api/feedback/abc/image"), ("GET", "/api/feedback/abc.png"),
                ("POST", "/api/feedback/abc/review"), ("DELETE", "/api/feedback/abc"),
                ("GET", "/api/feedback/export?include_unreviewed=true"),
                ("POST", "/api/models/a-model/evaluate")]
INFERENCE_ROUTES = [("GET", "/api/models"), ("GET", "/api/models/a-model"),
                    ("POST", "/api/predict"), ("POST", "/api/drawing/"),
                    ("GET", "/api/no-such-route"), ("GET", "/api/training_progress_x/")]


@pytest.mark.parametrize("method, path", TRAIN_ROUTES)
def test_train_routes_go_to_train_unchanged(proxy, method, path):
    answer = requests.request(method, proxy + path, json={}, timeout=5).json()
    assert answer == {"service": "train", "method": method, "path": path}


@pytest.mark.parametrize("method, path", INFERENCE_ROUTES)
def test_everything_else_under_api_goes_to_inference(proxy, method, path):
    answer = requests.request(method, proxy + path, json={}, timeout=5).json()
    assert answer == {"service": "inference", "method": method, "path": path}


V2_ROUTES = [("GET", "/v2"), ("GET", "/v2/health/ready"), ("GET", "/v2/models/a-model"),
             ("GET", "/v2/models/named.like.an.icon.png/ready"),
             ("POST", "/v2/models/a-model/infer"), ("POST", "/v2/models/a-model/versions/1/infer")]


@pytest.mark.parametrize("method, path", V2_ROUTES)
def test_open_inference_protocol_routes_go_to_inference_unchanged(proxy, method, path):
    answer = requests.request(method, proxy + path, json={}, timeout=5).json()
    assert answer == {"service": "inference", "method": method, "path": path}


def test_server_sent_events_pass_through_unbuffered(proxy, stand_ins):
    """The first event arrives while the upstream still holds the stream open."""
    with requests.get(f"{proxy}/api/train/runs/run-1/events", stream=True, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in response.headers
        lines = response.iter_lines()
        first = next(lines)
        assert json.loads(first.removeprefix(b"data: "))["state"] == "running"
        assert not stand_ins["train"].release_events.is_set()
        stand_ins["train"].release_events.set()
        rest = [line for line in lines if line]
    assert json.loads(rest[0].removeprefix(b"data: "))["state"] == "succeeded"


def test_a_too_large_upload_gets_413_in_the_api_error_format(proxy):
    """Bad input tried: a 5 KB body against a 4 KB limit (MAX_UPLOAD_BYTES=4096 here)."""
    response = requests.post(f"{proxy}/api/predict", data=b"x" * 5000, timeout=5,
                             headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "4096" in error["message"]


def test_a_feedback_sample_may_be_larger_than_an_upload_but_is_bounded(proxy):
    """Bad input tried: a 600 KB feedback body (its own limit is 512 KiB); a 300 KB one (an
    original of 256 KiB in base64 takes ~342 KB) passes although MAX_UPLOAD_BYTES is 4 KB here."""
    response = requests.post(f"{proxy}/api/feedback", data=b"x" * 600_000, timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    response = requests.post(f"{proxy}/api/feedback", data=b"x" * 300_000, timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.json() == {"service": "train", "method": "POST", "path": "/api/feedback"}


def test_a_service_that_is_down_gives_a_json_error_in_words(tmp_path):
    """Bad situation tried: nothing listens behind either upstream."""
    url, nginx, context = start_nginx((free_port(), free_port()), tmp_path, 4096)
    try:
        for path in ("/api/models", "/api/train/options"):
            response = requests.get(url + path, timeout=10)
            assert response.status_code == 503, path
            error = response.json()["error"]
            assert error["code"] == "service_unavailable"
            assert "not answering" in error["message"]
    finally:
        nginx.stop()
        context.__exit__(None, None, None)


# ------------------------------------------------------------------ the template and the files


def test_the_template_uses_only_its_documented_variables():
    used = set(re.findall(r"\$\{([A-Z_]+)\}", TEMPLATE.read_text()))
    assert used == set(launcher.TEMPLATE_VARIABLES)


def test_rendering_keeps_nginx_variables_and_fills_ours():
    values = {name: f"<{name}>" for name in launcher.TEMPLATE_VARIABLES}
    rendered = launcher.render_template(TEMPLATE.read_text(), values)
    assert "${" not in rendered
    assert "$host" in rendered and "$proxy_add_x_forwarded_for" in rendered
    assert "listen <HOST>:<PORT>;" in rendered
    with pytest.raises(ValueError, match="TRAIN_URL"):
        launcher.render_template("x", {k: v for k, v in values.items() if k != "TRAIN_URL"})


class InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style elements and attributes,
    event-handler attributes."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.test_ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
        if "data-testid" in names:
            self.test_ids.add(names["data-testid"])


def test_the_page_has_no_inline_code_and_every_test_hook():
    finder = InlineCodeFinder()
    finder.feed((STATIC / "index.html").read_text())
    assert finder.problems == []
    assert set(ISSUE_TEST_IDS) <= finder.test_ids


def test_no_asset_comes_from_another_site():
    """Only XML namespace names may look like URLs (they are never fetched)."""
    for path in STATIC.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".css", ".svg"}:
            text = path.read_text()
            urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
            foreign = [url for url in urls if not url.startswith("http://www.w3.org/")]
            assert foreign == [], f"{path.relative_to(REPO)}: {foreign}"
