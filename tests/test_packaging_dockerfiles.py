"""The Dockerfiles build what the contract says, as a reviewer would read them.

Pinned bases from build arguments, a builder stage for the Python venv, a fixed non-root user,
a health check, the service's port, and the exact gunicorn command the tests and `make run` use.
No Docker engine is needed: the files are parsed (their lint is in test_packaging_lint.py).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from packaging_support import DOCKERFILES, PYTHON_SERVICES, REPO

PORTS = {"inference": 8000, "train": 8001, "ui": 8080}


def instructions(service: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILES[service].read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line.rstrip("\\").strip() if current else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages(service: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(service):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def global_args(service: str) -> dict[str, str]:
    args = {}
    for name, value in instructions(service):
        if name == "FROM":
            break
        if name == "ARG" and "=" in value:
            key, default = value.split("=", 1)
            args[key] = default
    return args


def env_of(stage) -> dict[str, str]:
    env = {}
    for name, value in stage:
        if name == "ENV":
            for item in shlex.split(value):
                key, _, val = item.partition("=")
                env[key] = val
    return env


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), value
    return parsed


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_image_base_is_a_pinned_build_argument(service):
    base = global_args(service)["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base
    for stage in stages(service):
        assert stage[0][1].split()[0] == "${BASE_IMAGE}"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_image_builds_its_venv_in_a_builder_stage(service):
    builder, runtime = stages(service)
    assert builder[0][1].endswith("AS builder")
    runs = " ".join(value for name, value in builder if name == "RUN")
    assert "python -m venv /opt/venv" in runs and "--no-cache-dir" in runs
    assert f"{service}/requirements.txt" in " ".join(v for n, v in builder if n == "COPY")
    # the runtime stage installs nothing: it only copies the venv (no compiler, no pip cache)
    assert not [value for name, value in runtime if name == "RUN" and "pip" in value]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime


def test_train_installs_the_nodeps_requirements_without_dependencies():
    builder = stages("train")[0]
    runs = " ".join(value for name, value in builder if name == "RUN")
    assert re.search(r"--no-deps\s+-r /tmp/requirements-nodeps.txt", runs)


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_tensorflow_is_the_cpu_build(service):
    requirements = (REPO / service / "requirements.txt").read_text().lower()
    names = {re.split(r"[=<>~\[ ]", line.strip())[0] for line in requirements.splitlines()
             if line.strip() and not line.startswith("#")}
    assert "tensorflow-cpu" in names and "tensorflow" not in names


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_image_runs_gunicorn_as_a_fixed_non_root_user(service):
    runtime = stages(service)[-1]
    users = [value for name, value in runtime if name == "USER"]
    assert users, "no USER in the runtime stage"
    args = dict(value.split("=", 1) for name, value in runtime if name == "ARG" and "=" in value)
    uid = users[-1].split(":")[0]
    uid = args.get(uid.strip("${}"), uid)
    assert uid == "10001"
    # The command the tests' conftest and `make run` use, in exec form.
    cmd = exec_form(next(value for name, value in runtime if name == "CMD"))
    assert cmd == ["gunicorn", "--config", f"{service}/gunicorn.conf.py",
                   f"{service}:create_app()"]
    assert (REPO / service / "gunicorn.conf.py").is_file()
    workdir = [value for name, value in runtime if name == "WORKDIR"][-1]
    copies = [value for name, value in runtime if name == "COPY" and "--from" not in value]
    # only the service's own folder, into the working directory, so `<service>:create_app()` imports
    assert copies == [f"{service}/ {workdir}/{service}/"]
    env = env_of(runtime)
    assert env["MODEL_DIR"] == "/models"
    assert env["PORT"] == str(PORTS[service]) and env["HOST"] == "0.0.0.0"


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_image_exposes_its_port_and_checks_its_health(service):
    final = stages(service)[-1]
    assert ("EXPOSE", str(PORTS[service])) in final
    (healthcheck,) = [value for name, value in final if name == "HEALTHCHECK"]
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert "/healthz" in " ".join(command)
    assert "curl" not in " ".join(command)


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_health_check_command_fails_when_nothing_listens(service):
    """The HEALTHCHECK's python one-liner, run here against a port where nothing listens."""
    final = stages(service)[-1]
    (healthcheck,) = [value for name, value in final if name == "HEALTHCHECK"]
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    result = subprocess.run([sys.executable, "-c", command[2]], env={"PORT": "9"}, timeout=30,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "URLError" in result.stderr


def test_ui_image_is_a_pinned_unprivileged_nginx_with_the_template():
    base = global_args("ui")["NGINX_IMAGE"]
    assert re.fullmatch(r"nginxinc/nginx-unprivileged:\d+\.\d+\.\d+(-[a-z0-9.]+)?"
                        r"(@sha256:[0-9a-f]{64})?", base), base
    (stage,) = stages("ui")
    assert stage[0][1] == "${NGINX_IMAGE}"
    assert ("COPY", "ui/nginx/default.conf.template /etc/nginx/templates/default.conf.template"
            ) in stage
    env = env_of(stage)
    assert ("COPY", f"ui/static/ {env['STATIC_ROOT']}/") in stage
    assert [value for name, value in stage if name == "USER"][-1] != "root"
    assert exec_form([v for n, v in stage if n == "CMD"][-1]) == ["nginx", "-g", "daemon off;"]


def test_ui_image_substitutes_exactly_the_template_variables():
    """The image's envsubst filter and ENV defaults cover every ${VAR} of the template, and the
    filter leaves nginx's own $variables alone."""
    template = (REPO / "ui" / "nginx" / "default.conf.template").read_text()
    body = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", body))
    env = env_of(stages("ui")[0])
    pattern = re.compile(env["NGINX_ENVSUBST_FILTER"])
    assert used <= set(env), f"no default in the image for {used - set(env)}"
    assert {name for name in env if pattern.search(name)} == used
    for nginx_variable in ("host", "uri", "scheme", "proxy_add_x_forwarded_for"):
        assert not pattern.search(nginx_variable)


def test_ui_image_template_renders_to_a_config_nginx_accepts(tmp_path):
    """Render as the image's entrypoint does (envsubst of the filtered variables), then nginx -t.

    Upstream host names are resolved by `nginx -t`, so the test points them at 127.0.0.1.
    """
    template = (REPO / "ui" / "nginx" / "default.conf.template").read_text()
    env = env_of(stages("ui")[0])
    env.update(INFERENCE_ADDRESS="127.0.0.1:8000", TRAIN_URL="http://127.0.0.1:8001",
               STATIC_ROOT=str(REPO / "ui" / "static"), HOST="127.0.0.1")
    pattern = re.compile(env["NGINX_ENVSUBST_FILTER"])
    variables = " ".join(f"${{{name}}}" for name in env if pattern.search(name))
    rendered = subprocess.run(["envsubst", variables], input=template, env=env, text=True,
                              capture_output=True, check=True).stdout
    (tmp_path / "site.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"  uwsgi_temp_path {tmp_path}/uwsgi;\n  scgi_temp_path {tmp_path}/scgi;\n"
        f"  include /etc/nginx/mime.types;\n  include {tmp_path}/site.conf;\n}}\n")
    result = subprocess.run(["/usr/sbin/nginx", "-t", "-p", str(tmp_path), "-c",
                             str(tmp_path / "nginx.conf")], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    directives = [line for line in rendered.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in directives if "${" in line]


def test_dockerignore_keeps_volume_tests_and_venvs_out():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"model-volume", "tests", ".venv", ".venv-*", ".git"} <= ignored
