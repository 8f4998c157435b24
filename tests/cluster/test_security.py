"""Security, checked against the real API server: Pod Security "restricted" on the namespace,
train's RBAC, no service-account token in inference and ui."""

from __future__ import annotations

import pytest
from cluster_support import API_SERVER, CA, NAMESPACE, kubectl

pytestmark = pytest.mark.cluster

PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: privileged-probe
  namespace: digits
spec:
  containers:
    - name: probe
      image: docker.io/library/digits-pause:1
      imagePullPolicy: Never
      securityContext:
        privileged: true
"""


def test_the_namespace_rejects_a_privileged_pod():
    result = kubectl("apply", "-f", "-", stdin=PRIVILEGED_POD, check=False)
    assert result.returncode != 0, "a privileged pod was admitted"
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert "privileged" in result.stderr


def test_every_pod_template_is_admitted_by_pod_security_on_a_dry_run(apps, batch):
    """Every pod actually running passed admission; a server-side dry run of each Deployment
    and Job says so again, with no warning."""
    for kind, name in (("deployment", "train"), ("deployment", "inference"),
                       ("deployment", "ui"), ("job", "train-default")):
        manifest = kubectl("-n", NAMESPACE, "get", kind, name, "-o", "yaml").stdout
        result = kubectl("replace", "--dry-run=server", "-f", "-", stdin=manifest, check=False)
        assert result.returncode == 0, (kind, name, result.stderr)
        assert "PodSecurity" not in result.stderr, (kind, name, result.stderr)


def can_i(sa: str, verb: str, resource: str, namespace: str = NAMESPACE) -> bool:
    result = kubectl("auth", "can-i", verb, resource, "-n", namespace,
                     f"--as=system:serviceaccount:{NAMESPACE}:{sa}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


@pytest.mark.parametrize("verb", ["create", "watch", "delete", "get", "list"])
def test_train_may_manage_jobs_in_its_namespace(verb):
    assert can_i("train", verb, "jobs.batch")


def test_train_may_read_the_status_of_jobs_which_its_executor_does():
    result = kubectl("auth", "can-i", "get", "jobs.batch", "--subresource=status", "-n", NAMESPACE,
                     f"--as=system:serviceaccount:{NAMESPACE}:train", check=False)
    assert result.stdout.strip() == "yes"


@pytest.mark.parametrize(("verb", "resource", "namespace"), [
    ("get", "secrets", NAMESPACE),
    ("list", "secrets", NAMESPACE),
    ("create", "pods", NAMESPACE),
    ("delete", "pods", NAMESPACE),
    ("create", "pods/exec", NAMESPACE),
    ("update", "jobs.batch", NAMESPACE),
    ("create", "deployments.apps", NAMESPACE),
    ("create", "jobs.batch", "default"),
    ("list", "jobs.batch", "kube-system"),
    ("get", "secrets", "kube-system"),
])
def test_train_may_not(verb, resource, namespace):
    assert not can_i("train", verb, resource, namespace)


@pytest.mark.parametrize("sa", ["default"])
def test_the_other_pods_service_account_may_not_touch_jobs(sa):
    assert not can_i(sa, "create", "jobs.batch")


@pytest.mark.parametrize("app", ["inference", "ui"])
def test_no_service_account_token_is_mounted(core, app):
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={app}").items
    assert pods
    for pod in pods:
        assert pod.spec.automount_service_account_token is False
        volumes = [v.name for v in pod.spec.volumes or []]
        assert not [v for v in volumes if v.startswith("kube-api-access")], volumes
        for container in pod.spec.containers:
            mounts = [m.mount_path for m in container.volume_mounts or []]
            assert not [m for m in mounts if "serviceaccount" in m], mounts
        listing = kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--",
                          "ls", "/var/run/secrets/kubernetes.io/serviceaccount", check=False)
        assert listing.returncode != 0, listing.stdout


def test_train_has_its_token_and_it_works_against_the_api_server(core):
    pod = core.list_namespaced_pod(NAMESPACE, label_selector="app=train").items[0]
    token = kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--", "cat",
                    "/var/run/secrets/kubernetes.io/serviceaccount/token").stdout.strip()
    assert token.count(".") == 2  # a JWT
    # Only the token: no client certificate of the admin's kubeconfig alongside it.
    whoami = kubectl("--kubeconfig=/dev/null", f"--server={API_SERVER}",
                     f"--certificate-authority={CA}", f"--token={token}",
                     "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False)
    assert whoami.stdout == f"system:serviceaccount:{NAMESPACE}:train", whoami.stderr
