"""The conformance suite's fixtures: the deployed system under test and helpers shared by the checks.

Run it with ``pytest suites`` or ``k8s-sa conformance`` (see the README); it uses the pytest-k8s-sa
plugin's fixtures, ``--k8s-provider`` / ``--kind-cluster`` / ``--kubeconfig`` to choose the cluster and
``--sut FILE`` to choose what it judges (default: this project's reference workloads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from pytest_k8s_sa.cluster import Cluster
from pytest_k8s_sa.deploy import Deployment
from pytest_k8s_sa.deploy.sut import SutRun, deploy_sut
from pytest_k8s_sa.errors import K8sSAError
from pytest_k8s_sa.fixtures import SUT_KEY
from pytest_k8s_sa.sut import Sut
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
def sut(request: pytest.FixtureRequest) -> Sut:
    """What this run judges: the ``--sut`` file, or the built-in description of the reference workloads."""
    return request.config.stash[SUT_KEY]


@pytest.fixture(scope="session")
def sut_run(
    k8s_cluster: Cluster, k8s_names: Names, tmp_path_factory: pytest.TempPathFactory, sut: Sut
) -> Iterator[SutRun]:
    """The SUT deployed once per run (per xdist worker) by :func:`~pytest_k8s_sa.deploy.sut.deploy_sut`:
    as pods where a kubelet runs them, else as local processes (the reference workloads too)."""
    manager = deploy_sut(k8s_cluster, k8s_names, tmp_path_factory.mktemp("sut"), sut)
    stack = contextlib.ExitStack()
    try:
        run = stack.enter_context(manager)
    except K8sSAError as exc:
        failure = str(exc)  # failed outside the handler, so the report does not repeat it as a chain
    else:
        with stack:
            yield run
        return
    pytest.fail(f"[k8s-sa] the system under test did not deploy:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def deployment(sut_run: SutRun) -> Deployment:
    """The workloads: ``secret_store`` is the callee, ``api`` the allowed caller (a workload if the SUT
    has one, else only its identity), ``data_store`` the intruder identity the suite plays."""
    return sut_run.deployment
