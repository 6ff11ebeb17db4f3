"""A cluster handed out while its apiserver still makes its default roles (``ServingStart``).

The local provider's ``create_serving()`` returns once kube-apiserver serves the admin, about 2 s
before ``/readyz`` is 200 (its RBAC bootstrap waits a second before its first attempt, then writes
a hundred roles and bindings). These tests prove what that early cluster can do (admin work:
namespaces, service accounts, tokens, reviews), that ``wait_ready`` then leaves it as ready as
``create()`` does, through the process that started it and through one that attached (an xdist
worker), and that the deploy tells its caller the identities before the workloads start.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import request_token, review_token, wait_past_cache
from pytest_k8s_sa.deploy.steps import Identity
from pytest_k8s_sa.deploy.sut_deploy import deploy_sut
from pytest_k8s_sa.providers.base import ServingStart
from pytest_k8s_sa.providers.local import LocalProvider
from pytest_k8s_sa.sut.model import reference


def test_the_early_cluster_serves_the_admin_and_then_gets_ready(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "shared")
    assert isinstance(provider, ServingStart)
    try:
        info = provider.create_serving()
        assert info.wait_ready is not None
        cluster = Cluster(info, "serving")
        try:
            # Admin work right away: none of it needs the default roles.
            api = cluster.api_client
            resources.create_namespace(api, "early", resources.run_labels("serving"))
            resources.create_service_account(api, "early", "sa")
            token = request_token(api, "early", "sa", audiences=["a"], expiration_seconds=600)
            assert review_token(api, token.raw, ["a"]).authenticated
            cluster.wait_ready(60)
            assert info.wait_ready is None  # idempotent: a second call returns at once
            cluster.wait_ready(60)
            assert provider.control_plane is not None
            assert provider.control_plane.apiserver.get("/readyz").status_code == 200
            core = resources.core(api)
            assert core.read_namespaced_service_account("default", "default").metadata.name == "default"
        finally:
            cluster.close()
    finally:
        provider.destroy()


def test_a_provider_that_attached_waits_over_http(tmp_path: Path) -> None:
    """An xdist worker attaches to the control plane another one started: no ControlPlane object of
    its own, so it waits through the apiserver's HTTP endpoints with the admin's certificate."""
    shared = tmp_path / "shared"
    first = LocalProvider(shared)
    try:
        first.create_serving()
        second = LocalProvider(shared, shared=True)
        info = second.create_serving()
        assert second.control_plane is None
        assert info.wait_ready is not None
        info.wait_ready(60)
        state = first.control_plane
        assert state is not None
        assert state.apiserver.get("/readyz").status_code == 200
    finally:
        first.destroy()


def test_an_attached_provider_says_when_the_cluster_never_gets_ready(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = LocalProvider(shared)
    try:
        first.create_serving()
        info = LocalProvider(shared, shared=True).create_serving()
        assert info.wait_ready is not None
        first.destroy()  # the cluster goes away before it is ready for the attached one
        with pytest.raises(Exception, match="did not get ready"):
            info.wait_ready(1)
    finally:
        first.destroy()


def test_the_deploy_tells_the_caller_before_the_workloads_start(k8s_cluster, k8s_names, tmp_path) -> None:
    told: list[tuple[Identity, bool]] = []

    def on_caller(caller: Identity) -> None:
        namespace = resources.core(k8s_cluster.api_client).read_namespace(caller.namespace)
        account = resources.core(k8s_cluster.api_client).read_namespaced_service_account(
            caller.service_account, caller.namespace
        )
        told.append((caller, namespace.metadata.name == caller.namespace and account is not None))

    if k8s_cluster.capabilities.runs_pods:
        pytest.skip(f"runs the SUT as local processes (the local provider), not on {k8s_cluster.provider}")
    with deploy_sut(k8s_cluster, k8s_names, tmp_path, reference(), on_caller=on_caller) as run:
        assert len(told) == 1
        caller, existed = told[0]
        assert existed
        assert (caller.namespace, caller.service_account) == (
            run.deployment.caller.namespace,
            run.deployment.caller.service_account,
        )


# --- polling past the apiserver's success cache (no cluster) ----------------------------------------


def test_wait_past_cache_polls_until_the_condition_holds() -> None:
    calls: list[float] = []

    def condition() -> bool:
        calls.append(time.monotonic())
        return len(calls) >= 5

    # The cache ran out long ago: polled closely from the start.
    wait_past_cache(condition, time.monotonic() - 60, 30, "never")
    assert len(calls) == 5


def test_wait_past_cache_polls_lightly_while_the_cache_holds() -> None:
    """While a cached success cannot have run out the condition is asked about once a second, not
    twenty times: with the cache just started and the condition true at once, one call suffices."""
    calls: list[int] = []

    def condition() -> bool:
        calls.append(1)
        return True

    wait_past_cache(condition, time.monotonic(), 30, "never")
    assert len(calls) == 1


def test_wait_past_cache_raises_at_its_deadline() -> None:
    with pytest.raises(WaitTimeout, match="still accepted"):
        wait_past_cache(lambda: False, None, 0.3, "still accepted")


def test_the_serving_readiness_excludes_only_the_bootstrap_hooks() -> None:
    from pytest_k8s_sa.components.controlplane import BOOTSTRAP_HOOKS, SERVING_READYZ

    path, _, query = SERVING_READYZ.partition("?")
    assert path == "/readyz"
    assert sorted(part.removeprefix("exclude=") for part in query.split("&")) == sorted(BOOTSTRAP_HOOKS)
