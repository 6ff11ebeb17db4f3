"""The kubeconfig provider against a cluster it did not create (`k8s-sa up` plays the existing one).

It must create only what it deletes: after the run, no namespace or ClusterRoleBinding of the run
is left, the cluster itself still runs, and a kept namespace survives.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.cluster.resources import KEPT_LABEL, MANAGED_BY, MANAGED_BY_LABEL

INNER = """
def test_creates_things(k8s_cluster, k8s_namespace, k8s_service_account, token_reviewer, projected_token,
                        token_review):
    assert k8s_cluster.provider == "kubeconfig"
    assert not k8s_cluster.capabilities.holds_signing_key
    sa = k8s_service_account()
    token_reviewer(sa)
    token = projected_token(sa, audiences=["secret-store"])
    assert token_review(token, ["secret-store"]).authenticated

def test_fails_and_keeps_its_namespace(k8s_namespace):
    assert False, "failing on purpose"

def test_mint_token_skips_with_a_reason(mint_token):
    pass
"""


@pytest.fixture(scope="module")
def existing_cluster(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("existing")
    kubeconfig = folder / "kubeconfig"
    proc = subprocess.Popen(
        ["k8s-sa", "up", "--kubeconfig", str(kubeconfig), "--workdir", str(folder / "work")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready "), "k8s-sa up did not become ready"
        yield kubeconfig
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def managed(api: kubernetes.client.ApiClient) -> tuple[list[str], list[str], list[str]]:
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    core = kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    namespaces = core.list_namespace(label_selector=selector).items
    kept = [n.metadata.name for n in namespaces if (n.metadata.labels or {}).get(KEPT_LABEL)]
    live = [n.metadata.name for n in namespaces if n.metadata.name not in kept]
    bindings = [b.metadata.name for b in rbac.list_cluster_role_binding(label_selector=selector).items]
    return live, bindings, kept


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_run_leaves_nothing_but_kept_namespaces(tmp_path, existing_cluster, workers):
    # A plain subprocess, not pytester: pytester restores sys.modules after each test, which drops
    # the kubernetes models this test imports lazily and breaks later tests in this process.
    (tmp_path / "test_inner.py").write_text(INNER)
    inner = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--kubeconfig={existing_cluster}",
            "--keep-namespaces-on-failure",
            "-p",
            "no:cacheprovider",
            "-rs",
            f"--basetemp={tmp_path / 'basetemp'}",
            *workers,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert "1 failed, 1 passed, 1 skipped" in inner.stdout, inner.stdout[-3000:]
    assert "mint_token needs the cluster's service-account signing key" in inner.stdout
    api = kubernetes.config.new_client_from_config(config_file=str(existing_cluster))
    try:
        wait_until(lambda: not any(managed(api)[:2]), 60, "objects of the run are left on the cluster")
        _live, _bindings, kept = managed(api)
        assert kept, "the failed test's namespace should have been kept"
        kubernetes.client.CoreV1Api(api).delete_namespace(kept[0])
    finally:
        api.close()
