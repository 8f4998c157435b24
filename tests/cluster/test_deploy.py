"""What `make cluster-up` deployed: every Deployment rolled out, the starter model trained by the
train-default Job onto the volume as UID 10001, the page answering through its NodePort."""

from __future__ import annotations

import pytest
from cluster_support import NAMESPACE, STARTER_MODEL, VOLUME, kubectl, share_right, url

pytestmark = pytest.mark.cluster


def test_every_deployment_is_rolled_out(apps):
    deployments = apps.list_namespaced_deployment(NAMESPACE).items
    assert sorted(d.metadata.name for d in deployments) == ["inference", "train", "ui"]
    for deployment in deployments:
        status = deployment.status
        assert status.observed_generation == deployment.metadata.generation
        assert status.updated_replicas == deployment.spec.replicas, deployment.metadata.name
        assert status.ready_replicas == deployment.spec.replicas, deployment.metadata.name
        assert status.available_replicas == deployment.spec.replicas, deployment.metadata.name


def test_the_claim_is_bound_to_the_hostpath_volume(core):
    claim = core.read_namespaced_persistent_volume_claim("model-volume", NAMESPACE)
    assert claim.status.phase == "Bound"
    assert claim.spec.volume_name == "digits-model-volume"


def test_the_starter_job_completed_and_its_model_is_on_the_volume_as_10001(batch):
    job = batch.read_namespaced_job("train-default", NAMESPACE)
    assert job.status.succeeded == 1, job.status
    model = VOLUME / f"{STARTER_MODEL}.keras"
    assert model.is_file(), sorted(p.name for p in VOLUME.iterdir())
    assert (model.stat().st_uid, model.stat().st_gid) == (10001, 10001)


def test_the_page_answers_through_its_node_port(http):
    page = http.get(url("/"), timeout=10)
    assert page.status_code == 200
    assert "<title>digits</title>" in page.text
    for asset, kind in (("/js/app.js", "javascript"), ("/css/app.css", "text/css")):
        response = http.get(url(asset), timeout=10)
        assert response.status_code == 200, asset
        assert kind in response.headers["Content-Type"], asset


def test_models_lists_the_starter_model(http):
    response = http.get(url("/api/models"), timeout=30)
    assert response.status_code == 200, response.text
    listing = response.json()
    assert STARTER_MODEL in [model["name"] for model in listing["models"]]


def test_mnist_test_digits_are_read_right_through_the_page(http, test_digits):
    assert share_right(http, test_digits) >= 0.9


def test_pods_find_the_services_by_name_through_the_cluster_dns(core):
    """CoreDNS: `inference` and `train` resolve, inside a pod, to their Services' addresses."""
    pod = core.list_namespaced_pod(NAMESPACE, label_selector="app=train").items[0]
    for service in ("inference", "train"):
        cluster_ip = core.read_namespaced_service(service, NAMESPACE).spec.cluster_ip
        resolved = kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--", "python", "-c",
                           f"import socket; print(socket.gethostbyname({service!r}))")
        assert resolved.stdout.strip() == cluster_ip, service
