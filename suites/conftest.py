"""The conformance suite's fixtures: the deployed system under test and helpers shared by the checks.

Run it with ``pytest suites`` or ``k8s-sa conformance`` (see the README); it uses the pytest-k8s-sa
plugin's fixtures, ``--k8s-provider`` / ``--kind-cluster`` / ``--kubeconfig`` to choose the cluster and
``--sut FILE`` to choose what it judges (default: this project's reference workloads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy import Deployment, deploy_manifests
from pytest_k8s_sa.deploy.apicut.pod_mode import ManifestsCut
from pytest_k8s_sa.deploy.sut_deploy import (
    SutRun,
    deploy_sut_pods,
    deploy_sut_processes,
    find_auth_delegator_binding,
)
from pytest_k8s_sa.plugin.fixtures import SUT_KEY
from pytest_k8s_sa.sut.model import Sut

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


@contextlib.contextmanager
def _reference_pods(cluster: Cluster, names: Names, workdir: Path, sut: Sut) -> Iterator[SutRun]:
    """Without a SUT file, pod providers run the reference manifests of ``fixtures/manifests``; the
    secret store's in-cluster API address is re-pointed at an api-cut pod (the fail-closed checks)."""
    cut = ManifestsCut(cluster, resources.run_labels(cluster.run_id))
    stream_client = cluster.info.api_client()  # kubernetes.stream patches its client: a private one
    with contextlib.ExitStack() as stack:
        stack.callback(stream_client.close)
        deployed = stack.enter_context(deploy_manifests(cluster, names, workdir, patch=cut))
        control = cut.connect(cluster.api_client, stream_client)
        if control is not None:
            stack.callback(control.close)
        store = deployed.callee
        yield SutRun(
            sut,
            deployed,
            "manifests",
            binding=find_auth_delegator_binding(cluster.api_client, store.namespace, store.service_account),
            api_cut=control,
            caller_jti=lambda: deployed.caller.get("/debug/token-info").json().get("jti"),
            api_cut_unavailable=cut.cut.unavailable if cut.cut else None,
        )


@pytest.fixture(scope="session")
def sut_run(
    k8s_cluster: Cluster, k8s_names: Names, tmp_path_factory: pytest.TempPathFactory, sut: Sut
) -> Iterator[SutRun]:
    """The SUT deployed once per run (per xdist worker): as pods where a kubelet runs them, else as
    local processes (the reference workloads too, through their built-in SUT description)."""
    workdir = tmp_path_factory.mktemp("sut")
    if not k8s_cluster.capabilities.runs_pods:
        manager = deploy_sut_processes(k8s_cluster, k8s_names, workdir, sut)
    elif sut.is_reference:
        manager = _reference_pods(k8s_cluster, k8s_names, workdir, sut)
    else:
        manager = deploy_sut_pods(k8s_cluster, k8s_names, workdir, sut)
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
