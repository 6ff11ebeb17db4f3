"""Signing-key rotation on kind, the part that runs without Docker: the static pod manifest rewrite.

The live path (files copied into the node, the kubelet replacing the pod, KEY-001..003 judged on it)
runs in ``nox -s conformance_kind`` with the full profile's KEY checks selected.
"""

from __future__ import annotations

import pytest
import yaml

from pytest_k8s_sa.providers.kind_keys import (
    NODE_KEY_DIR,
    SIGNING_FLAG,
    STEP_ANNOTATION,
    VERIFYING_FLAG,
    KindKeyError,
    rewrite_manifest,
)

KUBEADM_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 172.18.0.2:6443
  labels: {component: kube-apiserver, tier: control-plane}
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=172.18.0.2
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
    image: registry.k8s.io/kube-apiserver:v1.37.2
    name: kube-apiserver
  hostNetwork: true
"""


def _command(text: str) -> list[str]:
    return [str(arg) for arg in yaml.safe_load(text)["spec"]["containers"][0]["command"]]


def test_both_key_flags_name_the_rotated_files_once_and_nothing_else_changes():
    rewritten = rewrite_manifest(KUBEADM_MANIFEST, 1)
    command = _command(rewritten)
    assert command.count(f"{SIGNING_FLAG}={NODE_KEY_DIR}/sa.key") == 1
    assert command.count(f"{VERIFYING_FLAG}={NODE_KEY_DIR}/sa.pub") == 1
    assert not any(arg.endswith("/etc/kubernetes/pki/sa.key") for arg in command)
    others = [a for a in _command(KUBEADM_MANIFEST) if not a.startswith((SIGNING_FLAG, VERIFYING_FLAG))]
    assert command[: len(others)] == others
    pod = yaml.safe_load(rewritten)
    assert pod["metadata"]["annotations"][STEP_ANNOTATION] == "1"
    assert "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint" in pod["metadata"]["annotations"]
    assert pod["spec"]["hostNetwork"] is True


def test_every_step_changes_the_manifest_so_the_kubelet_replaces_the_pod():
    first = rewrite_manifest(KUBEADM_MANIFEST, 1)
    second = rewrite_manifest(first, 2)
    assert first != second
    assert _command(first) == _command(second)
    assert yaml.safe_load(second)["metadata"]["annotations"][STEP_ANNOTATION] == "2"


@pytest.mark.parametrize("text", ["", "kind: Pod\nspec: {}\n", "{unclosed"])
def test_a_manifest_that_is_not_kubeadms_is_an_error_that_names_it(text):
    with pytest.raises(KindKeyError, match=r"kube-apiserver\.yaml is not the kube-apiserver static pod"):
        rewrite_manifest(text, 1)
