"""Signing-key rotation on a kind cluster: kubeadm's kube-apiserver static pod, pointed at our key set.

On a kind node, kube-apiserver is a static pod (``/etc/kubernetes/manifests/kube-apiserver.yaml``)
reading kubeadm's ``/etc/kubernetes/pki/sa.key`` (signs) and ``sa.pub`` (verifies). A rotation step
here does what an operator of such a cluster does:

1. the key set changes on the host (:class:`~pytest_k8s_sa.components.signingkeys.SigningKeys`, the
   same code as local and local-node), and its two flag files are copied into the node, under
   :data:`NODE_KEY_DIR` (inside the ``/etc/kubernetes/pki`` host path the static pod mounts);
2. the manifest's ``--service-account-signing-key-file`` / ``--service-account-key-file`` name those
   files, and an annotation counts the steps, so every step changes the manifest: the kubelet
   replaces the pod, and the new apiserver reads the new files (the manifest is written beside the
   folder and moved in, so the kubelet never reads half a file);
3. the step ends when the mirror pod carries the step's annotation and is Ready (its readiness probe
   is ``/readyz``), with a deadline. etcd is untouched: every object survives.

kubeadm's controller manager signs *legacy* Secret tokens with the same ``sa.key``: here that key is
key ``0`` of the set and there is no separate legacy key, so while the original key is retired the
legacy tokens do not verify either (the KEY scenario runs last and restores the original key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from ..base.errors import K8sSAError
from ..base.waiting import WaitTimeout, wait_until
from ..components.signingkeys import SigningKeys
from .keys import ApiServerKeyControl

NODE_KEY_DIR = "/etc/kubernetes/pki/k8s-sa-keys"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
STAGED_MANIFEST = "/etc/kubernetes/k8s-sa-kube-apiserver.yaml"
"""Where the new manifest is written first: outside the folder the kubelet watches."""
STEP_ANNOTATION = "k8s-sa.io/key-step"
SIGNING_FLAG = "--service-account-signing-key-file"
VERIFYING_FLAG = "--service-account-key-file"
RESTART_TIMEOUT = 180.0
"""Seconds for the kubelet to replace the static pod and the new apiserver to be ready."""

Docker = Callable[..., str]


class KindKeyError(K8sSAError):
    """A rotation step on the kind node failed; the message says which and what the node showed."""


def rewrite_manifest(text: str, step: int) -> str:
    """The static pod manifest with both key flags naming :data:`NODE_KEY_DIR` and ``step`` noted.

    Each flag is replaced where kubeadm wrote it (one ``--flag=value`` item of the container's
    ``command``) or added when missing; no other line changes meaning.
    """
    try:
        pod: dict[str, Any] = yaml.safe_load(text)
        container = pod["spec"]["containers"][0]
        command = [str(arg) for arg in container["command"]]
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise KindKeyError(f"{MANIFEST} is not the kube-apiserver static pod kubeadm writes: {exc}") from None
    wanted = {SIGNING_FLAG: f"{NODE_KEY_DIR}/sa.key", VERIFYING_FLAG: f"{NODE_KEY_DIR}/sa.pub"}
    for flag, value in wanted.items():
        command = [arg for arg in command if not arg.startswith(f"{flag}=")] + [f"{flag}={value}"]
    container["command"] = command
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    annotations[STEP_ANNOTATION] = str(step)
    metadata["annotations"] = annotations
    return yaml.safe_dump(pod, sort_keys=False)


class KindNodeKeys:
    """The key set of one kind cluster, on the host, applied to its control-plane node."""

    def __init__(self, docker: Docker, node: str, kubeconfig: Path, workdir: Path) -> None:
        self._docker = docker
        self.node = node
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.keys = SigningKeys(workdir / "sa.key", workdir / "sa.pub", workdir / "sa-legacy.pub")
        self._step = 0

    def key_control(self, original_key: Path) -> ApiServerKeyControl:
        """Start the key set from the node's own key (copied out to ``original_key``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # kubeadm has no separate legacy key: the original key (0) verifies legacy tokens itself.
        self.keys.legacy_public_key.write_bytes(b"")
        self.keys.initialise(original_key.read_bytes())
        return ApiServerKeyControl(self.keys, self.restart_apiserver, self.workdir / "keys.lock")

    @property
    def signing_key(self) -> Path:
        """The key that signs now (what minted tokens must be signed with)."""
        return self.keys.signing_key

    def restart_apiserver(self) -> None:
        """Copy the flag files in, rewrite the manifest, and wait for the replaced apiserver."""
        self._step += 1
        self._docker("exec", self.node, "mkdir", "-p", NODE_KEY_DIR)
        for name in ("sa.key", "sa.pub"):
            self._docker("cp", str(self.workdir / name), f"{self.node}:{NODE_KEY_DIR}/{name}")
        manifest = rewrite_manifest(self._docker("exec", self.node, "cat", MANIFEST), self._step)
        staged = self.workdir / "kube-apiserver.yaml"
        staged.write_text(manifest)
        self._docker("cp", str(staged), f"{self.node}:{STAGED_MANIFEST}")
        self._docker("exec", self.node, "mv", STAGED_MANIFEST, MANIFEST)
        started = time.monotonic()
        try:
            wait_until(
                lambda: self._replaced(self._step),
                RESTART_TIMEOUT,
                f"kube-apiserver was not replaced with key step {self._step}",
                max_interval=1.0,
            )
        except WaitTimeout as exc:
            raise KindKeyError(
                f"{exc} after {time.monotonic() - started:.0f}s; see `docker exec {self.node} crictl ps -a` "
                "and the kubelet's journal"
            ) from None

    def _replaced(self, step: int) -> bool:
        """The mirror pod shows ``step`` and is Ready: the new apiserver answers ``/readyz``."""
        try:
            client = kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))
        except Exception:  # the kubeconfig is ours; an error here is "not yet"
            return False
        try:
            pods = kubernetes.client.CoreV1Api(client).list_namespaced_pod(
                "kube-system", label_selector="component=kube-apiserver", _request_timeout=5
            )
        except Exception:  # refused, reset, 5xx: the apiserver is restarting
            return False
        finally:
            client.close()
        for pod in pods.items:
            annotations = pod.metadata.annotations or {}
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if annotations.get(STEP_ANNOTATION) == str(step) and ready:
                return True
        return False
