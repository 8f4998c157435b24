"""The manifests, the compose file, the Makefile and the code agree with each other.

Rendered with `kubectl kustomize` (base and every overlay), then checked the way a reviewer would:
Services select pods that exist, on ports those pods open; probes call routes the apps really
have; the model claim is mounted at MODEL_DIR wherever a model is read or written (the train
service's own Jobs included); image names agree everywhere; every environment variable anyone
sets or reads is in the configuration table (docs/configuration.md).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import yaml
from packaging_support import (
    K8S,
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    OVERLAYS,
    PYTHON_SERVICES,
    REPO,
    SERVICES,
    by_kind,
    claim_mounted_at,
    container_env,
    lint_tool,
    load_yaml_documents,
    pod_spec,
    render,
    run,
)

IMAGE_NAMES = {f"digits-{service}" for service in SERVICES}
MODEL_CLAIM = "model-volume"
DEFAULT_TAG = "dev"


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request) -> list[dict]:
    return render(request.param)


def deployments(objects):
    return by_kind(objects, "Deployment")


def config_maps(objects):
    return by_kind(objects, "ConfigMap")


def selected_pods(service: dict, objects: list[dict]) -> list[dict]:
    selector = service["spec"]["selector"]
    return [deployment for deployment in deployments(objects).values()
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()]


def container_ports(deployment: dict) -> dict:
    """Every way a Service can name a port of this pod: by number and by name."""
    ports = {}
    for container in pod_spec(deployment)["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


# ---------------------------------------------------------------- Services ↔ pods


def test_every_service_selects_exactly_one_deployment(rendered):
    services = by_kind(rendered, "Service")
    assert set(services) == set(SERVICES)
    for name, service in services.items():
        pods = selected_pods(service, rendered)
        assert [pod["metadata"]["name"] for pod in pods] == [name], service["spec"]["selector"]
    # and the Deployment's own selector matches its pods (else the API server refuses it)
    for deployment in deployments(rendered).values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_target_ports_are_container_ports(rendered):
    design_ports = {"inference": 8000, "train": 8001, "ui": 8080}
    for name, service in by_kind(rendered, "Service").items():
        (pod,) = selected_pods(service, rendered)
        ports = container_ports(pod)
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in ports, f"Service {name}: targetPort {target} is not in {ports}"
            assert ports[target] == design_ports[name] == port["port"]


def test_container_port_is_the_port_the_app_listens_on(rendered):
    """PORT in the container's environment is the containerPort (the gunicorn/nginx bind)."""
    maps = config_maps(rendered)
    for name, deployment in deployments(rendered).items():
        container = pod_spec(deployment)["containers"][0]
        env = container_env(container, maps)
        assert int(env["PORT"]) == container["ports"][0]["containerPort"], name


def test_ui_upstreams_are_the_services(rendered):
    maps = config_maps(rendered)
    services = by_kind(rendered, "Service")
    env = container_env(pod_spec(deployments(rendered)["ui"])["containers"][0], maps)
    # Inference is an nginx upstream block (host:port), train a URL.
    for variable, service in (("INFERENCE_ADDRESS", "inference"), ("TRAIN_URL", "train")):
        value = env[variable] if "://" in env[variable] else f"http://{env[variable]}"
        url = urlsplit(value)
        assert url.hostname == service and url.path in ("", "/")
        assert url.port in {port["port"] for port in services[service]["spec"]["ports"]}


# ---------------------------------------------------------------- probes ↔ routes


ROUTE_PROBE = """
import json, sys
from {service} import create_app
adapter = create_app().url_map.bind("localhost")
found = {{}}
for path in sys.argv[1:]:
    try:
        endpoint, _ = adapter.match(path, method="GET")
        found[path] = endpoint
    except Exception as error:
        found[path] = None
print(json.dumps(found))
"""


def probe_paths(deployment: dict) -> set[str]:
    container = pod_spec(deployment)["containers"][0]
    paths = set()
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert kind in container, f"{deployment['metadata']['name']} has no {kind}"
        paths.add(container[kind]["httpGet"]["path"])
    return paths


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_probes_call_get_routes_of_the_app(service, tmp_path):
    """The app's own url_map (create_app() in a fresh interpreter) has a GET route per probe."""
    paths = set()
    for kustomization in KUSTOMIZATIONS:
        paths |= probe_paths(deployments(render(kustomization))[service])
    assert {"/healthz", "/readyz"} <= paths
    result = subprocess.run(
        [sys.executable, "-c", ROUTE_PROBE.format(service=service), *sorted(paths)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "MODEL_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(found.values()), f"{service}: no GET route for {found}"


def test_ui_probe_is_a_location_of_the_nginx_template():
    template = (REPO / "ui" / "nginx" / "default.conf.template").read_text()
    locations = set(re.findall(r"location\s*=\s*(\S+)\s*\{", template))
    for kustomization in KUSTOMIZATIONS:
        assert probe_paths(deployments(render(kustomization))["ui"]) <= locations


# ---------------------------------------------------------------- the model volume


def test_model_claim_is_mounted_at_model_dir(rendered):
    maps = config_maps(rendered)
    claims = by_kind(rendered, "PersistentVolumeClaim")
    assert MODEL_CLAIM in claims
    for name in PYTHON_SERVICES:
        pod = pod_spec(deployments(rendered)[name])
        model_dir = container_env(pod["containers"][0], maps)["MODEL_DIR"]
        assert claim_mounted_at(pod, model_dir) == MODEL_CLAIM, name
    # inference only reads it
    inference = pod_spec(deployments(rendered)["inference"])
    mount = next(m for m in inference["containers"][0]["volumeMounts"]
                 if m["mountPath"] == container_env(inference["containers"][0], maps)["MODEL_DIR"])
    assert mount.get("readOnly") is True


def test_default_model_job_mounts_the_claim_at_model_dir():
    (job,) = load_yaml_documents(K8S / "jobs" / "train-default.yaml")
    pod = pod_spec(job)
    model_dir = container_env(pod["containers"][0], {})["MODEL_DIR"]
    assert claim_mounted_at(pod, model_dir) == MODEL_CLAIM
    assert job["metadata"]["namespace"] == "digits"


def kubernetes_executor_module():
    from train.executors import kubernetes

    return kubernetes


class PodReader:
    """Stands in for CoreV1Api.read_namespaced_pod: the train pod as the Deployment defines it."""

    def __init__(self, deployment: dict):
        self.deployment = deployment

    def read_namespaced_pod(self, name, namespace):
        containers = [SimpleNamespace(name=c["name"], image=c["image"])
                      for c in pod_spec(self.deployment)["containers"]]
        return SimpleNamespace(spec=SimpleNamespace(containers=containers))


def job_train_would_create(kustomization: str, monkeypatch) -> tuple[dict, dict]:
    """The Job body train's Kubernetes executor builds, configured by the train pod's rendered
    environment exactly as in the cluster (settings from the environment, the image read from
    its own pod, the namespace from its service-account mount)."""
    from train import config

    kubernetes = kubernetes_executor_module()
    rendered = render(kustomization)
    train = deployments(rendered)["train"]
    env = container_env(pod_spec(train)["containers"][0], config_maps(rendered))
    assert env["TRAIN_EXECUTOR"] == "kubernetes"
    for name in list(os.environ):
        if name.startswith(("TRAIN_", "MODEL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOSTNAME", "train-5d9c7-abcde")
    monkeypatch.setattr(config, "own_namespace", lambda: train["metadata"]["namespace"])
    settings = kubernetes.KubernetesSettings.from_environment(Path(env["MODEL_DIR"]))
    executor = kubernetes.KubernetesExecutor(None, settings, core_api=PodReader(train))
    return executor.manifest("20260101-000000-abcdef"), train


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_train_created_job_mounts_the_claim_at_model_dir_and_is_restricted(kustomization,
                                                                           monkeypatch):
    job, train = job_train_would_create(kustomization, monkeypatch)
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    pod = pod_spec(job)
    container = pod["containers"][0]
    model_dir = container_env(container, {})["MODEL_DIR"]
    assert model_dir == "/models"
    assert claim_mounted_at(pod, model_dir) == MODEL_CLAIM
    # The same image as the service, in the namespace where train's Role lets it create Jobs.
    assert container["image"] == pod_spec(train)["containers"][0]["image"]
    assert job["metadata"]["namespace"] == train["metadata"]["namespace"] == "digits"
    # The namespace enforces the "restricted" Pod Security Standard: a Job pod that doesn't meet
    # it is refused, and the run would never start.
    assert_restricted(pod, f"Job from build_job_manifest: {json.dumps(job)[:300]}")
    assert pod["automountServiceAccountToken"] is False


def test_train_created_job_validates_strictly(monkeypatch):
    job, _ = job_train_would_create("overlays/kind", monkeypatch)
    result = run([lint_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict",
                  "--quiet", "-"], input=yaml.safe_dump(job))
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- pod hardening


def assert_restricted(pod: dict, what: str) -> None:
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True, what
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", what
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, what
        assert context.get("capabilities", {}).get("drop") == ["ALL"], what
        assert context.get("readOnlyRootFilesystem") is True, what
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{what}: no emptyDir at /tmp"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{what}: {bound}"


def test_pods_are_hardened(rendered):
    for name, deployment in deployments(rendered).items():
        pod = pod_spec(deployment)
        assert_restricted(pod, name)
        assert pod["securityContext"]["runAsUser"] >= 10000, name
        # Only train talks to the API server.
        assert pod["automountServiceAccountToken"] is (name == "train"), name
    (job,) = load_yaml_documents(K8S / "jobs" / "train-default.yaml")
    assert_restricted(pod_spec(job), "jobs/train-default.yaml")
    assert pod_spec(job)["automountServiceAccountToken"] is False


def test_namespace_replicas_strategy_and_claim(rendered):
    namespaced = [obj for obj in rendered
                  if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")]
    assert {obj["metadata"].get("namespace") for obj in namespaced} == {"digits"}
    assert by_kind(rendered, "Namespace")["digits"]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"
    assert by_kind(rendered, "PersistentVolumeClaim")[MODEL_CLAIM]["spec"]["accessModes"] == [
        "ReadWriteOnce"]
    workloads = deployments(rendered)
    assert workloads["inference"]["spec"]["replicas"] == 2
    assert workloads["train"]["spec"]["replicas"] == 1
    assert workloads["train"]["spec"]["strategy"] == {"type": "Recreate"}


def test_train_may_manage_jobs_and_read_pods_in_its_namespace_only(rendered):
    assert not by_kind(rendered, "ClusterRole") and not by_kind(rendered, "ClusterRoleBinding")
    train = pod_spec(deployments(rendered)["train"])
    account = train["serviceAccountName"]
    assert account in by_kind(rendered, "ServiceAccount")
    (binding,) = [b for b in by_kind(rendered, "RoleBinding").values()
                  if {"kind": "ServiceAccount", "name": account} in
                  [{"kind": s["kind"], "name": s["name"]} for s in b["subjects"]]]
    role = by_kind(rendered, "Role")[binding["roleRef"]["name"]]
    rules = {(group, resource): set(rule["verbs"])
             for rule in role["rules"] for group in rule["apiGroups"]
             for resource in rule["resources"]}
    assert rules == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("batch", "jobs/status"): {"get"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_the_page_reach_both_services(overlay):
    """Every overlay has the network-policies component; its rules fit the real labels and ports."""
    rendered = render(f"overlays/{overlay}")
    policies = by_kind(rendered, "NetworkPolicy")
    default_deny = policies["default-deny"]["spec"]
    assert default_deny["podSelector"] == {} and set(default_deny["policyTypes"]) == {
        "Ingress", "Egress"}
    labels = {name: d["spec"]["template"]["metadata"]["labels"]
              for name, d in deployments(rendered).items()}
    ports = {name: container_ports(d) for name, d in deployments(rendered).items()}

    def selects(selector, service):
        return selector.get("matchLabels", {}).items() <= labels[service].items()

    def allowed(direction, policy_service, peer_service, port):
        for policy in policies.values():
            spec = policy["spec"]
            if not selects(spec["podSelector"], policy_service):
                continue
            for rule in spec.get(direction, []):
                peers = rule.get("from" if direction == "ingress" else "to", [])
                peer_ok = not peers or any(
                    "podSelector" in peer and selects(peer["podSelector"], peer_service)
                    for peer in peers)
                port_ok = not rule.get("ports") or port in [p["port"] for p in rule["ports"]]
                if peer_ok and port_ok:
                    return True
        return False

    for service, port in (("inference", 8000), ("train", 8001)):
        assert port in ports[service].values()
        assert allowed("egress", "ui", service, port), f"ui may not reach {service}:{port}"
        assert allowed("ingress", service, "ui", port), f"{service}:{port} refuses the ui"
    assert not allowed("ingress", "inference", "train", 8000)


def test_kind_node_port_is_the_one_kind_maps_to_the_host():
    rendered = render("overlays/kind")
    ui = by_kind(rendered, "Service")["ui"]["spec"]
    assert ui["type"] == "NodePort"
    cluster = yaml.safe_load((K8S / "kind-cluster.yaml").read_text())
    mappings = [m for node in cluster["nodes"] for m in node.get("extraPortMappings", [])]
    assert {"containerPort": ui["ports"][0]["nodePort"], "hostPort": 8080} in [
        {"containerPort": m["containerPort"], "hostPort": m["hostPort"]} for m in mappings]
    for deployment in deployments(rendered).values():
        assert pod_spec(deployment)["containers"][0]["imagePullPolicy"] == "Never"


def test_autoscaler_targets_the_inference_deployment():
    rendered = render("overlays/minikube")
    (hpa,) = by_kind(rendered, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "inference")
    assert hpa["spec"]["minReplicas"] == deployments(rendered)["inference"]["spec"]["replicas"]


# ---------------------------------------------------------------- image names


def image_names_and_tags(images) -> set[tuple[str, str]]:
    return {tuple(image.rsplit(":", 1)) for image in images}


def manifest_images() -> set[str]:
    images = set()
    for kustomization in KUSTOMIZATIONS:
        for deployment in deployments(render(kustomization)).values():
            images |= {c["image"] for c in pod_spec(deployment)["containers"]}
    for job in load_yaml_documents(K8S / "jobs" / "train-default.yaml"):
        images |= {c["image"] for c in pod_spec(job)["containers"]}
    return images


def compose_config() -> dict:
    result = run(["docker-compose", "--file", str(REPO / "docker-compose.yml"), "config"],
                 env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def makefile_images() -> set[str]:
    result = run(["make", "--no-print-directory", "-n", "images"])
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"-t (\S+)", result.stdout))


def test_image_names_agree_between_manifests_compose_and_makefile():
    from_manifests = image_names_and_tags(manifest_images())
    from_compose = image_names_and_tags(s["image"] for s in compose_config()["services"].values())
    from_makefile = image_names_and_tags(makefile_images())
    expected = {(name, DEFAULT_TAG) for name in IMAGE_NAMES}
    assert from_makefile == expected
    assert from_compose == expected
    assert from_manifests == expected


def test_every_image_is_built_from_its_own_dockerfile():
    services = compose_config()["services"]
    for service in SERVICES:
        build = services[service]["build"]
        assert Path(build["context"]) == REPO
        assert build["dockerfile"] == f"{service}/Dockerfile"
        assert services[service]["image"] == f"digits-{service}:{DEFAULT_TAG}"
    assert f"-f {service}/Dockerfile -t digits-{service}:" in " ".join(
        run(["make", "-n", "images"]).stdout.split())


# ------------------------------------------------------- environment ↔ docs/configuration.md


def readme_variables() -> set[str]:
    table = (REPO / "docs" / "configuration.md").read_text()
    return {name for row in table.splitlines() if row.startswith("|")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def manifest_variables() -> set[str]:
    names = set()
    for kustomization in KUSTOMIZATIONS:
        rendered = render(kustomization)
        for config_map in config_maps(rendered).values():
            names |= set(config_map.get("data", {}))
        for deployment in deployments(rendered).values():
            for container in pod_spec(deployment)["containers"]:
                names |= {item["name"] for item in container.get("env", [])}
    for job in load_yaml_documents(K8S / "jobs" / "train-default.yaml"):
        for container in pod_spec(job)["containers"]:
            names |= {item["name"] for item in container.get("env", [])}
    return names


def compose_variables() -> set[str]:
    text = (REPO / "docker-compose.yml").read_text()
    names = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    for service in yaml.safe_load(text)["services"].values():
        names |= set(service.get("environment", {}))
    return names


def is_environment(node: ast.AST) -> bool:
    """`os.environ`, `environ`, or a variable called env/environ (a passed-in environment)."""
    text = ast.unparse(node)
    return text in ("os.environ", "environ", "env", "environment")


def code_variables() -> dict[str, str]:
    """Names the code reads from the environment: environ.get/[...]/in, os.getenv, f(env, "X").

    Setting a default for a library (os.environ.setdefault) is not a read.
    """
    found = {}
    sources = [*REPO.glob("train/**/*.py"), *REPO.glob("inference/**/*.py"),
               *REPO.glob("scripts/**/*.py")]
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Call):
                func = node.func
                reads = (isinstance(func, ast.Attribute) and func.attr == "get"
                         and is_environment(func.value))
                reads |= ast.unparse(func) in ("os.getenv", "getenv")
                passes_env = any(is_environment(arg) for arg in node.args)
                if reads or passes_env:
                    names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                if is_environment(node.value) and isinstance(node.slice, ast.Constant):
                    names = [node.slice.value]
            elif (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
                  and any(is_environment(c) for c in node.comparators)):
                names = [node.left.value]
            for name in names:
                if isinstance(name, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", name):
                    found.setdefault(name, str(path.relative_to(REPO)))
    return found


# Read by the code but set by the container runtime, never by a user: no setting to document.
SET_BY_THE_RUNTIME = {"HOSTNAME"}


def test_every_environment_variable_is_in_the_readme_table():
    documented = readme_variables()
    assert {"MODEL_DIR", "PORT", "HOST"} <= documented
    missing = {}
    for where, names in (("k8s", manifest_variables()), ("docker-compose.yml",
                                                         compose_variables())):
        for name in names - documented:
            missing[name] = where
    for name, where in code_variables().items():
        if name not in documented and name not in SET_BY_THE_RUNTIME:
            missing[name] = where
    assert not missing, f"not in the configuration table of docs/configuration.md: {missing}"


def test_the_code_scan_finds_what_the_services_read():
    """The scanner above sees the variables we know the services read (else it proves nothing)."""
    found = code_variables()
    assert {"MODEL_DIR", "MAX_UPLOAD_BYTES", "MODEL_CACHE_SIZE", "PORT"} <= set(found)


def test_model_dir_is_the_same_in_images_compose_and_manifests(rendered):
    for service in PYTHON_SERVICES:
        dockerfile = (REPO / service / "Dockerfile").read_text()
        assert re.search(r"\bMODEL_DIR=/models\b", dockerfile), service
        assert compose_config()["services"][service]["environment"]["MODEL_DIR"] == "/models"
    assert config_maps(rendered)  # the settings ConfigMap is rendered
    (settings,) = config_maps(rendered).values()
    assert settings["data"]["MODEL_DIR"] == "/models"
