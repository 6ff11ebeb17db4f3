"""The one pod builder (``deploy/workload_pod.py``) and the one kubeconfig writer, without a cluster.

The reference manifests in ``fixtures/manifests`` stay YAML (readable, applied as they are, replaceable
with ``$K8S_SA_MANIFESTS``); these tests prove their pods have exactly the builder's shape, so the
reference workloads, a SUT's pods, the token tap and the API cut cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_k8s_sa.base.kubeconfig import client_certificate_kubeconfig, token_file_kubeconfig
from pytest_k8s_sa.deploy import steps
from pytest_k8s_sa.deploy.manifests import MANIFESTS_DIR, render_manifests
from pytest_k8s_sa.deploy.model import TOKEN_EXPIRATION_SECONDS
from pytest_k8s_sa.deploy.workload_pod import (
    CODE_CONFIGMAP,
    CODE_MOUNT,
    http_probe,
    projected_token_volume,
    workload_pod,
)
from pytest_k8s_sa.sut.model import allowed_service_accounts, reference

VALUES = {
    "RUN_ID": "r1",
    "API_NAMESPACE": "api-ns",
    "SECRET_STORE_NAMESPACE": "store-ns",
    "DATA_STORE_NAMESPACE": "data-ns",
    "AUTH_DELEGATOR_BINDING": "binding",
    "IMAGE": "python:test",
    "AUDIENCE": "secret-store",
    "TOKEN_REFRESH_SECONDS": "2",
}
STORE_URL = "http://secret-store.store-ns.svc.cluster.local:8081"


def _pod_specs() -> dict[str, dict[str, Any]]:
    docs = render_manifests(MANIFESTS_DIR, VALUES)
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}


def _caller(name: str, port: int) -> dict[str, Any]:
    return workload_pod(
        name,
        "python:test",
        module=name.replace("-", "_"),
        env={
            "LISTEN_ADDR": f":{port}",
            "SECRET_STORE_URL": STORE_URL,
            "TOKEN_PATH": f"/var/run/secrets/tokens/{name}-token",
            "TOKEN_REFRESH_SECONDS": "2",
        },
        ports={"http": port},
        probe=http_probe("/healthz", port),
        service_account=name,
        automount_token=False,
        mounts=[{"name": "tokens", "mountPath": "/var/run/secrets/tokens", "readOnly": True}],
        volumes=[projected_token_volume("tokens", f"{name}-token", "secret-store", TOKEN_EXPIRATION_SECONDS)],
    )


def test_the_reference_manifests_pods_are_the_builders() -> None:
    specs = _pod_specs()
    assert specs["secret-store"] == workload_pod(
        "secret-store",
        "python:test",
        module="secret_store",
        env={
            "LISTEN_ADDR": ":8081",
            "AUDIENCE": "secret-store",
            "ALLOWED_SERVICE_ACCOUNTS": allowed_service_accounts("api-ns", "api"),
            "CACHE_TTL_SECONDS": "2",  # the reference SUT declares cache_seconds: 2
        },
        ports={"http": 8081},
        probe=http_probe("/healthz", 8081),
        service_account="secret-store",
    )
    assert specs["api"] == _caller("api", 8080)
    assert specs["data-store"] == _caller("data-store", 8082)


def test_a_workload_module_pod_mounts_the_code_configmap() -> None:
    spec = workload_pod("tap", "img", module="tap", ports={"http": 8080})
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "k8s_sa_workloads.tap"]
    assert container["volumeMounts"][0]["mountPath"] == CODE_MOUNT
    assert spec["volumes"][0] == {"name": "code", "configMap": {"name": CODE_CONFIGMAP}}
    assert {"name": "PYTHONUNBUFFERED", "value": "1"} in container["env"]


def test_a_sut_pod_runs_the_image_as_it_is_with_its_token_volume() -> None:
    sut = reference()
    assert sut.caller is not None
    caller = type(sut.caller)(**{**sut.caller.__dict__, "image": "team/caller:1"})
    spec = steps.sut_pod(
        caller, "caller", steps.values(sut), service_account="api", token=("/var/run/t/tok", "aud")
    )
    container = spec["containers"][0]
    assert "command" not in container
    assert "resources" not in container
    assert container["volumeMounts"] == [{"name": "tokens", "mountPath": "/var/run/t", "readOnly": True}]
    source = spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"path": "tok", "audience": "aud", "expirationSeconds": TOKEN_EXPIRATION_SECONDS}
    assert spec["automountServiceAccountToken"] is False


def test_the_tap_pod_has_no_readiness_probe() -> None:
    docs = steps.tap_docs("ns", "http://callee:1", "X-Client-Id", "img", {})
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert "readinessProbe" not in deployment["spec"]["template"]["spec"]["containers"][0]
    assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment", "Service"]


@pytest.mark.parametrize("embedded", [True, False])
def test_one_kubeconfig_writer_for_certificates_and_token_files(tmp_path: Path, embedded: bool) -> None:
    ca: Path | bytes = b"PEM" if embedded else tmp_path / "ca.crt"
    path = token_file_kubeconfig("https://127.0.0.1:6443", ca, tmp_path / "token").write(
        tmp_path / "a" / "kc"
    )
    doc = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    assert doc["users"][0]["user"] == {"tokenFile": str(tmp_path / "token")}
    cluster = doc["clusters"][0]["cluster"]
    assert ("certificate-authority-data" in cluster) is embedded
    assert doc["current-context"] == doc["contexts"][0]["name"]
    cert = client_certificate_kubeconfig("https://x", ca, tmp_path / "c", tmp_path / "k").as_dict()
    assert cert["users"][0]["user"] == {
        "client-certificate": str(tmp_path / "c"),
        "client-key": str(tmp_path / "k"),
    }


def _cluster(runs_pods: bool) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        capabilities=SimpleNamespace(runs_pods=runs_pods), run_id="r1", provider="test", api_client=None
    )


@pytest.mark.parametrize(
    ("runs_pods", "is_reference", "mode"),
    [(False, True, "process"), (False, False, "process"), (True, True, "manifests"), (True, False, "pod")],
)
def test_the_one_deploy_path_picks_the_mode(runs_pods: bool, is_reference: bool, mode: str) -> None:
    from pytest_k8s_sa.deploy.sut_deploy import deploy_mode

    sut = reference()
    if not is_reference:
        sut = type(sut)(sut.implementation, sut.callee, sut.caller, Path("sut.yaml"))
    assert deploy_mode(_cluster(runs_pods), sut) == mode


@pytest.mark.parametrize(("runs_pods", "missing"), [(False, "command"), (True, "image")])
def test_a_sut_without_what_the_mode_needs_fails_before_touching_the_cluster(
    tmp_path: Path, runs_pods: bool, missing: str
) -> None:
    from pytest_k8s_sa.deploy.sut_deploy import deploy_sut
    from pytest_k8s_sa.sut.model import SutError

    ref = reference()
    callee = type(ref.callee)(**{**ref.callee.__dict__, "image": None, "command": None})
    sut = type(ref)(ref.implementation, callee, None, tmp_path / "sut.yaml")
    with (
        pytest.raises(SutError, match=rf"callee\.{missing} is needed"),
        deploy_sut(_cluster(runs_pods), lambda stem: stem, tmp_path, sut),
    ):
        pass
