"""Helpers shared by the conformance checks."""

from __future__ import annotations

from pytest_k8s_sa import resources
from pytest_k8s_sa.cluster import Cluster
from pytest_k8s_sa.deploy import Deployment, Workload
from pytest_k8s_sa.fixtures import ServiceAccountRef

GRANTED = "Hello from secret store. You have been authenticated"


def sa_ref(cluster: Cluster, workload: Workload) -> ServiceAccountRef:
    sa = resources.core(cluster.api_client).read_namespaced_service_account(
        workload.service_account, workload.namespace
    )
    return ServiceAccountRef(workload.namespace, workload.service_account, sa.metadata.uid)


def store_says(deployment: Deployment, token: str | None) -> tuple[int, str]:
    """Ask the secret store directly, presenting ``token`` (None: no header)."""
    headers = {} if token is None else {"X-Client-Id": token}
    answer = deployment.secret_store.get("/", headers=headers)
    return answer.status_code, answer.text
