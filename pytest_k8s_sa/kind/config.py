"""The kind cluster configuration the project creates clusters with (``kind create --config``).

kind's defaults (pods 10.244.0.0/16, Services 10.96.0.0/12) are private ranges that may be in use
on the machine's networks. The project's defaults come from the shared address space 100.64.0.0/10
(RFC 6598), next to the Docker networks of :mod:`.docker` and inside its guarded 100.96.0.0/14:
pods 100.98.0.0/16, Services 100.99.0.0/16 (outside local-node's 198.18.0.0/15 and every private
range). ``--kind-pod-subnet`` / ``--kind-service-subnet`` override them; ``--kind-config`` replaces
the whole file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from ..base.errors import K8sSAError

POD_SUBNET = "100.98.0.0/16"
SERVICE_SUBNET = "100.99.0.0/16"


def cluster_config(pod_subnet: str = POD_SUBNET, service_subnet: str = SERVICE_SUBNET) -> dict[str, object]:
    """One control-plane node (the CNI the node image ships is single-node) with these subnets."""
    for label, value in (("pod subnet", pod_subnet), ("service subnet", service_subnet)):
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise K8sSAError(f"the kind {label} {value!r} is not a network in CIDR notation") from None
    if ipaddress.ip_network(pod_subnet).overlaps(ipaddress.ip_network(service_subnet)):
        raise K8sSAError(f"the kind pod subnet {pod_subnet} overlaps the service subnet {service_subnet}")
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"podSubnet": pod_subnet, "serviceSubnet": service_subnet},
        "nodes": [{"role": "control-plane"}],
    }


def write_cluster_config(
    path: Path, pod_subnet: str = POD_SUBNET, service_subnet: str = SERVICE_SUBNET
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cluster_config(pod_subnet, service_subnet), sort_keys=False))
    return path
