"""Fixtures of the security gates: the workloads deployed once per session on the local provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import Token, request_token
from pytest_k8s_sa.cluster.types import Names, ServiceAccountRef
from pytest_k8s_sa.deploy import Deployment, deploy_processes

AUDIENCE = "secret-store"


@pytest.fixture(scope="session")
def deployment(
    k8s_cluster: Cluster, k8s_names: Names, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The API service, secret store and data store as local processes (once per xdist worker)."""
    if k8s_cluster.capabilities.runs_pods:
        pytest.skip(
            "the security gates run the workloads as local processes, which needs the local provider "
            f"(this run uses {k8s_cluster.provider}, whose kubelet would have to run them as pods)"
        )
    with deploy_processes(k8s_cluster, k8s_names, tmp_path_factory.mktemp("security-workloads")) as deployed:
        yield deployed


def sa_ref(cluster: Cluster, namespace: str, name: str) -> ServiceAccountRef:
    sa = resources.core(cluster.api_client).read_namespaced_service_account(name, namespace)
    return ServiceAccountRef(namespace, name, sa.metadata.uid)


@pytest.fixture(scope="session")
def api_sa(k8s_cluster: Cluster, deployment: Deployment) -> ServiceAccountRef:
    """The API service's service account: the only one on the secret store's allow-list."""
    return sa_ref(k8s_cluster, deployment.caller.namespace, deployment.caller.service_account)


@pytest.fixture(scope="session")
def data_store_sa(k8s_cluster: Cluster, deployment: Deployment) -> ServiceAccountRef:
    """The data store's service account: real and reviewable, but not on the allow-list."""
    return sa_ref(k8s_cluster, deployment.intruder.namespace, deployment.intruder.service_account)


@pytest.fixture(scope="session")
def api_token(k8s_cluster: Cluster, api_sa: ServiceAccountRef) -> Token:
    """A fresh TokenRequest token of the API service for the store's audience (the store answers 200)."""
    return request_token(
        k8s_cluster.api_client, api_sa.namespace, api_sa.name, audiences=[AUDIENCE], expiration_seconds=3600
    )
