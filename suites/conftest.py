"""The conformance suite's fixtures: the deployed workloads and helpers shared by the checks.

Run it with ``pytest suites`` (see the README); it uses the pytest-k8s-sa plugin's fixtures and
``--k8s-provider`` / ``--kind-cluster`` / ``--kubeconfig`` to choose the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_k8s_sa.cluster import Cluster
from pytest_k8s_sa.deploy import Deployment, deploy_workloads
from pytest_k8s_sa.types import Names

# Session fixtures shared by several check modules, the real-time scenarios of the full profile
# (started with the run) and the hook that runs their checks last:
from .scenarios import (  # noqa: F401
    manual_rotation,
    pytest_collection_modifyitems,
    real_time,
    revoked,
    start_real_time_scenarios,
)


@pytest.fixture(scope="session")
def deployment(
    k8s_cluster: Cluster, k8s_names: Names, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The API service, secret store and data store, deployed once per run (per xdist worker).

    Real pods where the cluster's kubelet runs them, local processes otherwise (``deploy_workloads``).
    """
    with deploy_workloads(k8s_cluster, k8s_names, tmp_path_factory.mktemp("workloads")) as deployed:
        yield deployed
