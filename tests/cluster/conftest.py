"""Fixtures of tests/cluster/ (helpers and the module docstring: cluster_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from cluster_support import DIGITS_ASKED, KUBECONFIG, save_cluster_state
from kubernetes import client, config
from shared_helpers import base64_png_test_digits


@pytest.fixture(scope="session")
def api_client() -> client.ApiClient:
    if not Path(KUBECONFIG).exists():
        pytest.fail(f"no cluster: {KUBECONFIG} is missing (make cluster-up)")
    return config.new_client_from_config(config_file=KUBECONFIG)


@pytest.fixture(scope="session")
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def batch(api_client) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture(scope="session")
def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 directly, never through a proxy from the environment
    return session



@pytest.fixture(scope="session")
def test_digits(tmp_path_factory) -> list[tuple[int, str]]:
    """The first MNIST test digits of mnist-5k's test split, as (label, base64 PNG)."""
    return base64_png_test_digits(tmp_path_factory.mktemp("unused-volume"), DIGITS_ASKED)




@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        try:
            save_cluster_state(item.name)
        except Exception as error:  # noqa: BLE001 - a report must not hide the failure
            print(f"could not save the cluster's state: {error}")
    return report
