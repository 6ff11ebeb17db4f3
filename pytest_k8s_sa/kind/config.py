"""The kind cluster configuration the project creates clusters with (``kind create --config``).

kind's defaults (pods 10.244.0.0/16, Services 10.96.0.0/12) are private ranges that may be in use
on the machine's networks. The project's defaults come from the shared address space 100.64.0.0/10
(RFC 6598), next to the Docker networks of :mod:`.docker` and inside its guarded 100.96.0.0/14:
pods 100.98.0.0/16, Services 100.99.0.0/16 (outside local-node's 198.18.0.0/15 and every private
range). ``--kind-pod-subnet`` / ``--kind-service-subnet`` override them; ``--kind-config`` replaces
the whole file.

With ``audit_dir``, kube-apiserver also keeps the audit log of TokenReviews that local and
local-node keep (:data:`~pytest_k8s_sa.components.controlplane.REVIEW_AUDIT_POLICY`): the folder is
mounted into the node (``extraMounts``) and into the apiserver's static pod (kubeadm
``extraVolumes``), so the log is a file on the host that a failed check's artifacts read directly.
kubeadm's configuration is patched with JSON 6902 ``add`` operations, one patch per kubeadm API
version kind may generate (``v1beta4`` from Kubernetes 1.36 on: ``extraArgs`` a list; ``v1beta3``
before: a map); kind applies only the one whose version it generated.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from ..base.errors import K8sSAError
from ..components.controlplane import AUDIT_POLICY_FILE, REVIEW_AUDIT_POLICY, review_audit_flags

POD_SUBNET = "100.98.0.0/16"
SERVICE_SUBNET = "100.99.0.0/16"
AUDIT_MOUNT = "/k8s-sa-audit"
"""Where the audit folder appears in the node and in the kube-apiserver pod."""


def _audit_patches() -> list[dict[str, object]]:
    """kubeadm patches that turn the TokenReview audit log on (see the module's docstring)."""
    volume = {
        "name": "k8s-sa-audit",
        "hostPath": AUDIT_MOUNT,
        "mountPath": AUDIT_MOUNT,
        "readOnly": False,
        "pathType": "Directory",
    }
    mount = {"op": "add", "path": "/apiServer/extraVolumes", "value": [volume]}
    v1beta4 = [
        {"op": "add", "path": "/apiServer/extraArgs/-", "value": {"name": name, "value": value}}
        for name, value in review_audit_flags(AUDIT_MOUNT).items()
    ]
    v1beta3 = [
        {"op": "add", "path": f"/apiServer/extraArgs/{name}", "value": value}
        for name, value in review_audit_flags(AUDIT_MOUNT).items()
    ]
    return [
        {
            "group": "kubeadm.k8s.io",
            "version": version,
            "kind": "ClusterConfiguration",
            "patch": yaml.safe_dump([*ops, mount]),
        }
        for version, ops in (("v1beta4", v1beta4), ("v1beta3", v1beta3))
    ]


def cluster_config(
    pod_subnet: str = POD_SUBNET, service_subnet: str = SERVICE_SUBNET, audit_dir: Path | None = None
) -> dict[str, object]:
    """One control-plane node (the CNI the node image ships is single-node) with these subnets; with
    ``audit_dir`` (an absolute host folder) the apiserver's TokenReview audit log goes there."""
    for label, value in (("pod subnet", pod_subnet), ("service subnet", service_subnet)):
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise K8sSAError(f"the kind {label} {value!r} is not a network in CIDR notation") from None
    if ipaddress.ip_network(pod_subnet).overlaps(ipaddress.ip_network(service_subnet)):
        raise K8sSAError(f"the kind pod subnet {pod_subnet} overlaps the service subnet {service_subnet}")
    node: dict[str, object] = {"role": "control-plane"}
    doc: dict[str, object] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"podSubnet": pod_subnet, "serviceSubnet": service_subnet},
        "nodes": [node],
    }
    if audit_dir is not None:
        node["extraMounts"] = [{"hostPath": str(audit_dir.resolve()), "containerPath": AUDIT_MOUNT}]
        doc["kubeadmConfigPatchesJSON6902"] = _audit_patches()
    return doc


def write_cluster_config(
    path: Path,
    pod_subnet: str = POD_SUBNET,
    service_subnet: str = SERVICE_SUBNET,
    audit_dir: Path | None = None,
) -> Path:
    """The configuration file, and with ``audit_dir`` the audit policy in that folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if audit_dir is not None:
        audit_dir.mkdir(parents=True, exist_ok=True)
        (audit_dir / AUDIT_POLICY_FILE).write_text(REVIEW_AUDIT_POLICY)
    path.write_text(yaml.safe_dump(cluster_config(pod_subnet, service_subnet, audit_dir), sort_keys=False))
    return path
