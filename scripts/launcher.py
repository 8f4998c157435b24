"""Start the services' real commands on this machine, wait until they answer, stop them again.

One launcher for everything that runs digits as processes: `make run` (scripts/run_local.py), the
test suite (tests/conftest.py and the browser fixtures) and the benchmarks (bench/). Each process
gets its own process group, so stopping it stops its children (gunicorn's workers, a training
job), and it is told to stop when the launcher dies (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LOCALHOST = "127.0.0.1"
NGINX = Path(os.environ.get("NGINX", "/usr/sbin/nginx"))
NGINX_TEMPLATE = REPO / "ui" / "nginx" / "default.conf.template"
STATIC_ROOT = REPO / "ui" / "static"
MIME_TYPES = Path("/etc/nginx/mime.types")
TEMPLATE_VARIABLES = ("HOST", "PORT", "STATIC_ROOT", "INFERENCE_ADDRESS", "TRAIN_URL",
                      "MAX_UPLOAD_BYTES")
DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024


# ------------------------------------------------------------------ ports


# Ports free_port() has handed out in this process: the kernel may offer the same free port to
# two calls in a row (nothing listens on it yet), and callers take several ports before they
# start anything (a test run once had ui and inference on one port, and inference never bound).
_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has not
    handed out before."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOCALHOST, 0))
            port = sock.getsockname()[1]
        with _HANDED_OUT_LOCK:
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now, checked the way gunicorn and nginx bind.

    They set SO_REUSEADDR, so connections of a previous run still in TIME_WAIT do not stop them;
    a check without it would refuse a port the servers would bind fine. A listening socket
    still makes the bind fail, which is what this is for.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def check_ports_free(*ports: int) -> None:
    busy = [port for port in ports if not port_is_free(port)]
    if busy:
        raise RuntimeError(f"port(s) {', '.join(map(str, busy))} on {LOCALHOST} are in use; "
                           "set UI_PORT, INFERENCE_PORT or TRAIN_PORT to free ones")


# ------------------------------------------------------------------ processes


def die_with_parent() -> None:
    """In the child, before exec: own process group; SIGTERM if the launcher dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    os.setsid()  # Ctrl-C reaches the launcher, which stops its children in order


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    """One command run in its own process group; `health_url` answers 200 when it is ready."""

    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path | None = None
    base_url: str = ""
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> Process:
        output = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=output,
                                          stderr=subprocess.STDOUT if output else None,
                                          preexec_fn=die_with_parent)
        finally:
            if output is not None:
                output.close()
        return self

    def exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(its output went to this terminal)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float = 180.0) -> Process:
        wait_until_ready([self], timeout)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to its process group, SIGKILL if it is still there after `timeout`."""
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def wait_until_ready(processes: list[Process], timeout: float) -> None:
    """Poll every health URL until all answer 200; fail early, with its log, if one exits."""
    deadline = time.monotonic() + timeout
    waiting = list(processes)
    while waiting:
        for process in list(waiting):
            if process.exited():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n"
                                   f"{process.log_tail()}")
            if answers_ok(process.health_url):
                waiting.remove(process)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(process.name for process in waiting)
            tails = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in waiting)
            raise TimeoutError(f"not ready after {timeout:.0f}s: {names}\n{tails}")
        if waiting:
            time.sleep(0.1)


@contextlib.contextmanager
def running(process: Process, timeout: float = 180.0) -> Iterator[Process]:
    """`process` started and ready for the block, stopped when it ends."""
    process.start()
    try:
        process.wait_ready(timeout)
        yield process
    finally:
        process.stop()


def service_env(model_dir: Path, port: int, extra: dict[str, str] | None = None
                ) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MODEL_DIR": str(model_dir), "HOST": LOCALHOST, "PORT": str(port),
                "PYTHONUNBUFFERED": "1"})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def gunicorn_command(service: str) -> list[str]:
    """The service's real command line, as in its Dockerfile."""
    return [str(VENV_BIN / "gunicorn"), "--config", f"{service}/gunicorn.conf.py",
            f"{service}:create_app()"]


def gunicorn(service: str, model_dir: Path, port: int, *, log_path: Path | None = None,
             ready_path: str = "/readyz", extra_env: dict[str, str] | None = None) -> Process:
    """`service` ("train" or "inference") under gunicorn on 127.0.0.1:`port`, not yet started."""
    base_url = f"http://{LOCALHOST}:{port}"
    return Process(name=service, args=gunicorn_command(service),
                   env=service_env(model_dir, port, extra_env),
                   health_url=base_url + ready_path, log_path=log_path, base_url=base_url)


# ------------------------------------------------------------------ nginx with the ui's template


def render_template(template: str, values: dict[str, str]) -> str:
    """envsubst with a variable list: replace only `${NAME}` for our names, keep nginx's `$vars`."""
    missing = [name for name in TEMPLATE_VARIABLES if name not in values]
    if missing:
        raise ValueError(f"template variables without a value: {', '.join(missing)}")
    return re.sub(r"\$\{([A-Z_]+)\}",
                  lambda match: values.get(match.group(1), match.group(0)), template)


def nginx_main_config(workdir: Path, site_config: Path) -> str:
    """A main nginx.conf that keeps every file nginx writes inside `workdir`."""
    mime_types = f"include {MIME_TYPES};" if MIME_TYPES.is_file() else (
        "types { text/html html; text/css css; application/javascript js; "
        "image/svg+xml svg; image/png png; application/json json; }")
    return f"""# written by scripts/launcher.py for this run only
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {mime_types}
    default_type application/octet-stream;
    access_log {workdir}/access.log;
    sendfile on;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {site_config};
}}
"""


def write_nginx_config(workdir: Path, ui_port: int, inference_port: int, train_port: int,
                       max_upload_bytes: int) -> Path:
    """Render the ui template for local upstreams; return the main config's path."""
    site = render_template(NGINX_TEMPLATE.read_text(), {
        "HOST": LOCALHOST,
        "PORT": str(ui_port),
        "STATIC_ROOT": str(STATIC_ROOT),
        "INFERENCE_ADDRESS": f"{LOCALHOST}:{inference_port}",
        "TRAIN_URL": f"http://{LOCALHOST}:{train_port}",
        "MAX_UPLOAD_BYTES": str(max_upload_bytes),
    })
    site_path = workdir / "default.conf"
    site_path.write_text(site)
    main_path = workdir / "nginx.conf"
    main_path.write_text(nginx_main_config(workdir, site_path))
    return main_path


@contextlib.contextmanager
def nginx_process(ui_port: int, inference_port: int, train_port: int, *,
                  max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
                  log_dir: Path | None = None) -> Iterator[Process]:
    """nginx with the ui template rendered for local upstreams, config checked, not yet started.

    Its private folder (config, pid, temp paths, error log) is removed when the block ends; the
    caller starts and stops the process inside the block.
    """
    if not NGINX.is_file():
        raise RuntimeError(f"{NGINX} is missing: run `make system-deps` (Debian's nginx package)")
    nginx_dir = Path(tempfile.mkdtemp(prefix="digits-nginx-"))
    try:
        # When run as root, nginx's workers drop to `nobody`: they must reach the temp paths.
        nginx_dir.chmod(0o755)
        main_conf = write_nginx_config(nginx_dir, ui_port, inference_port, train_port,
                                       max_upload_bytes)
        args = [str(NGINX), "-p", str(nginx_dir), "-c", str(main_conf),
                "-e", str(nginx_dir / "error.log")]
        test = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"nginx rejects the rendered config:\n{test.stderr}")
        base_url = f"http://{LOCALHOST}:{ui_port}"
        yield Process(name="nginx", args=[*args, "-g", "daemon off;"], env=dict(os.environ),
                      health_url=base_url + "/healthz", base_url=base_url,
                      log_path=log_dir / "nginx.log" if log_dir else None)
    finally:
        if log_dir is not None and (nginx_dir / "error.log").is_file():
            log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nginx_dir / "error.log", log_dir / "nginx-error.log")
        shutil.rmtree(nginx_dir, ignore_errors=True)


# ------------------------------------------------------------------ the whole system


@dataclass
class System:
    """The running system: where to reach it and its processes."""

    url: str
    inference_url: str
    train_url: str
    model_dir: Path
    processes: list[Process]


@contextlib.contextmanager
def running_system(model_dir: Path, ui_port: int, inference_port: int, train_port: int, *,
                   log_dir: Path | None = None, ready_timeout: float = 180.0,
                   service_env_extra: dict[str, str] | None = None) -> Iterator[System]:
    """Train, inference and nginx running until the block ends, then all three stopped."""
    check_ports_free(ui_port, inference_port, train_port)
    extra = dict(service_env_extra or {})
    max_upload = int(os.environ.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))

    def log_path(name: str) -> Path | None:
        return log_dir / f"{name}.log" if log_dir else None

    with nginx_process(ui_port, inference_port, train_port, max_upload_bytes=max_upload,
                       log_dir=log_dir) as nginx:
        processes = [
            gunicorn("train", model_dir, train_port, log_path=log_path("train"), extra_env=extra),
            gunicorn("inference", model_dir, inference_port, log_path=log_path("inference"),
                     extra_env={"MAX_UPLOAD_BYTES": str(max_upload), **extra}),
            nginx,
        ]
        try:
            for process in processes:
                process.start()
            wait_until_ready(processes, ready_timeout)
            yield System(url=nginx.base_url, inference_url=processes[1].base_url,
                         train_url=processes[0].base_url, model_dir=model_dir,
                         processes=processes)
        finally:
            # The proxy first, so no request reaches a service that is going away.
            for process in reversed(processes):
                process.stop()
