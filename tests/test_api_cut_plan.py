"""What the pod-mode API cut changes in a callee's pod spec and what it adds, without a cluster.

The cut works only if exactly these hold (see ``pytest_k8s_sa/deploy/apicut/pod_mode.py`` for the upstream
reasons): the callee's container names ``kubernetes:443`` explicitly, its pod has service links off,
a Service named ``kubernetes`` on port 443 selects the cut pod, and the cut forwards to the ClusterIP
of ``default/kubernetes``. The cluster-side run is ``tests/node/test_sut_pod_mode.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pytest_k8s_sa.components.pki import CertificateAuthority
from pytest_k8s_sa.deploy.apicut import pod_mode as api_cut


class _FakeCore:
    def __init__(self, _client: object) -> None:
        pass

    def read_namespaced_service(self, name: str, namespace: str) -> Any:
        assert (name, namespace) == ("kubernetes", "default")
        port = SimpleNamespace(name="https", port=443)
        return SimpleNamespace(spec=SimpleNamespace(cluster_ip="198.18.0.1", ports=[port]))


def _cluster(ca: CertificateAuthority | None) -> Any:
    capabilities = SimpleNamespace(default_workload_image="python:test")
    return SimpleNamespace(api_client=None, info=SimpleNamespace(cluster_ca=ca), capabilities=capabilities)


@pytest.fixture(autouse=True)
def _no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes.client, "CoreV1Api", _FakeCore)
    monkeypatch.delenv("K8S_SA_WORKLOAD_IMAGE", raising=False)


def _callee_spec() -> dict[str, Any]:
    return {"containers": [{"name": "callee", "env": [{"name": "AUDIENCE", "value": "secret-store"}]}]}


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_the_callee_is_re_pointed_and_nothing_else_changes() -> None:
    cut = api_cut.plan(_cluster(None), "store-ns", {"AUDIENCE": "secret-store"}, {"run": "x"})
    spec = _callee_spec()
    cut.patch_callee(spec)
    assert spec["enableServiceLinks"] is False
    assert spec["containers"][0]["env"] == [
        {"name": "AUDIENCE", "value": "secret-store"},
        {"name": "KUBERNETES_SERVICE_HOST", "value": "kubernetes"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "443"},
    ]
    assert set(spec) == {"containers", "enableServiceLinks"}


def test_a_service_named_kubernetes_selects_the_cut_which_forwards_to_the_real_one() -> None:
    cut = api_cut.plan(_cluster(None), "store-ns", {}, {"run": "x"})
    docs = _by_kind(cut.docs)
    service = docs["Service"]
    assert service["metadata"] == {"name": "kubernetes", "namespace": "store-ns", "labels": {"run": "x"}}
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": api_cut.CUT_PORT}]
    pod = docs["Deployment"]["spec"]["template"]
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert pod["spec"]["enableServiceLinks"] is False  # its own env must not point at itself
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["UPSTREAM"] == "198.18.0.1:443"
    assert "CERT_FILE" not in env  # no cluster CA: the TLS-answering outages are not played
    assert not cut.tls
    assert container["image"] == "python:test"
    assert "Secret" not in docs
    assert set(docs["ConfigMap"]["data"]) >= {"api_cut.py", "httpserver.py"}


def test_with_the_cluster_ca_the_cut_serves_a_certificate_for_kubernetes() -> None:
    ca = CertificateAuthority()
    cut = api_cut.plan(_cluster(ca), "store-ns", {}, {})
    assert cut.tls
    secret = _by_kind(cut.docs)["Secret"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kubernetes"]
    assert cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject
    # `relay` (KEY-004/005) verifies the apiserver with the cluster CA, for the name the callee uses
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca.cert_pem
    pod = _by_kind(cut.docs)["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert (env["UPSTREAM_CA_FILE"], env["UPSTREAM_NAME"]) == ("/etc/api-cut/ca.crt", "kubernetes")


def test_a_sut_that_sets_the_address_itself_is_left_alone() -> None:
    cut = api_cut.plan(_cluster(None), "store-ns", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, {})
    spec = _callee_spec()
    cut.patch_callee(spec)
    assert spec == _callee_spec()
    assert cut.docs == []
    assert cut.unavailable is not None
    assert "KUBERNETES_SERVICE_HOST" in cut.unavailable


def test_an_existing_rsa_ca_issues_the_cut_certificate() -> None:
    """kind: the cluster's own kubeadm CA (RSA) is read back from PEM and signs the cut's certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    ca = CertificateAuthority.from_pem(cert.public_bytes(serialization.Encoding.PEM), key_pem)
    secret = _by_kind(api_cut.plan(_cluster(ca), "ns", {}, {}).docs)["Secret"]
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(cert)
