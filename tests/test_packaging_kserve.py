"""k8s/components/kserve: the InferenceService, as far as the tools here can check it.

kubernetes-validate has no schema for KServe's CRD (it says so and passes the document), so:
- the base plus the component is rendered by Kustomize, and its built-in objects validate
  strictly as before;
- the predictor's pod part (containers, volumes, security context...) is validated strictly as
  the Pod it becomes, with the fields KServe adds to a PodSpec taken off first;
- the InferenceService's own fields are checked against the field names of KServe's CRD
  (below, from the kserve SDK's generated models: the SDK itself can't be installed beside this
  project's pins, see k8s/components/kserve/README.md);
- cross-references: the image, the settings ConfigMap, the claim at MODEL_DIR (read-only), the
  port the app listens on, probes that are GET routes of the app, the same hardening.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from packaging_support import (
    K8S,
    KUBERNETES_VERSION,
    REPO,
    by_kind,
    claim_mounted_at,
    container_env,
    lint_tool,
    render,
    run,
)
from test_packaging_crossrefs import ROUTE_PROBE, assert_restricted

COMPONENT = K8S / "components" / "kserve"
# serving.kserve.io/v1beta1 field names (kserve 0.21 SDK, models/v1beta1_*.py attribute maps).
INFERENCE_SERVICE_SPEC_FIELDS = {"predictor", "transformer", "explainer", "canary", "tracing"}
# V1beta1PredictorSpec = the PodSpec's fields inline, plus these of KServe's own.
PREDICTOR_EXTRA_FIELDS = {
    "annotations", "autoScaling", "batcher", "canaryTrafficPercent", "containerConcurrency",
    "deploymentStrategy", "huggingface", "labels", "lightgbm", "logger", "maxReplicas",
    "minReplicas", "model", "onnx", "paddle", "pmml", "pytorch", "scaleMetric",
    "scaleMetricType", "scaleTarget", "sklearn", "storageContainerName", "storageUris",
    "tensorflow", "timeout", "triton", "workerSpec", "xgboost", "serviceAccount",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """The base with the kserve component, as an overlay would use it."""
    folder = tmp_path_factory.mktemp("kserve-overlay")
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(K8S / 'base', folder)}\n"
        f"components:\n  - {os.path.relpath(COMPONENT, folder)}\n")
    return render(folder)


@pytest.fixture(scope="module")
def service(rendered) -> dict:
    (service,) = by_kind(rendered, "InferenceService").values()
    return service


def predictor_pod(service: dict) -> dict:
    """The pod KServe makes of the predictor: its PodSpec fields, KServe's own taken off."""
    predictor = service["spec"]["predictor"]
    return {key: value for key, value in predictor.items() if key not in PREDICTOR_EXTRA_FIELDS}


def validate(text: str) -> subprocess.CompletedProcess:
    return run([lint_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", "-"],
               input=text)


def test_the_component_renders_with_the_base(rendered, service):
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["metadata"]["namespace"] == "digits"
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert set(service["spec"]) <= INFERENCE_SERVICE_SPEC_FIELDS
    assert "NetworkPolicy" in {obj["kind"] for obj in rendered}


def test_kubernetes_validate_knows_the_built_in_objects_but_not_the_crd(rendered):
    built_in = [obj for obj in rendered if obj["kind"] != "InferenceService"]
    result = validate(yaml.safe_dump_all(built_in))
    assert result.returncode == 0, result.stdout + result.stderr
    crd = validate(yaml.safe_dump_all(by_kind(rendered, "InferenceService").values()))
    # It passes what it has no schema for: the pod part is validated on its own below.
    assert "Couldn't find schema for kind InferenceService" in crd.stdout + crd.stderr


def test_the_predictor_pod_validates_strictly_and_is_hardened(service):
    pod_spec = predictor_pod(service)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "digits-predictor", "namespace": "digits"}, "spec": pod_spec}
    result = validate(yaml.safe_dump(pod))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_restricted(pod_spec, "the kserve predictor")
    assert pod_spec["automountServiceAccountToken"] is False


def test_a_misspelt_pod_field_is_caught(service):
    pod_spec = predictor_pod(service)
    pod_spec["containers"][0]["imagePullPolicyy"] = "Never"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod_spec}
    result = validate(yaml.safe_dump(pod))
    assert result.returncode != 0 and "imagePullPolicyy" in result.stdout + result.stderr


def test_same_image_settings_claim_and_port_as_the_inference_deployment(rendered, service):
    maps = by_kind(rendered, "ConfigMap")
    deployment = by_kind(rendered, "Deployment")["inference"]["spec"]["template"]["spec"]
    pod = predictor_pod(service)
    (container,) = pod["containers"]
    assert container["image"] == deployment["containers"][0]["image"] == "digits-inference:dev"
    # The generated settings' real (hash-suffixed) name: name-references.yaml at work.
    env = container_env(container, maps)
    model_dir = env["MODEL_DIR"]
    assert model_dir == container_env(deployment["containers"][0], maps)["MODEL_DIR"]
    assert claim_mounted_at(pod, model_dir) == "model-volume"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == model_dir)
    assert mount["readOnly"] is True
    assert int(env["PORT"]) == container["ports"][0]["containerPort"] == 8000
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == 8000


def test_the_probes_are_get_routes_of_the_inference_app(service, tmp_path):
    (container,) = predictor_pod(service)["containers"]
    paths = sorted({container[kind]["httpGet"]["path"]
                    for kind in ("startupProbe", "livenessProbe", "readinessProbe")})
    assert paths == ["/v2/health/live", "/v2/health/ready"]
    result = subprocess.run(
        [sys.executable, "-c", ROUTE_PROBE.format(service="inference"), *paths],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "MODEL_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(found.values()), found


def test_the_network_policy_opens_the_predictors_port(rendered, service):
    policy = by_kind(rendered, "NetworkPolicy")["kserve-digits"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": service["metadata"]["name"]}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8000]
