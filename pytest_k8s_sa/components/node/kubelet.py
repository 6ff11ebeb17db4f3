"""Node PKI, kubeconfigs and the configuration of kubelet, kube-proxy and kube-scheduler.

* kubelet: ``failCgroupV1: false`` (1.37 refuses cgroup v1 otherwise; it only warns with it),
  cgroup driver from CRI (cgroupfs), ``cgroupRoot: /k8s-sa-node`` so every cgroup it makes is under
  one root the teardown removes, webhook authentication/authorization (``kubectl exec``/
  port-forward go through the apiserver), image GC off (the imported images cannot be pulled
  again), ``syncFrequency: 10s`` so projected volumes are re-checked often, pod logs under the
  work folder.
* kube-proxy: ``iptables`` mode (still the default in 1.37), rules only inside the node's network
  namespace; conntrack sysctls left alone (``maxPerCore: 0`` and zero timeouts); node ports only on
  the node IP.
(kube-scheduler, a control-plane component, is in :mod:`pytest_k8s_sa.components.controlplane`.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...base.kubeconfig import client_certificate_kubeconfig
from ...base.process import Process
from ..controlplane import LOOPBACK
from ..pki import CertificateAuthority
from .network import CLUSTER_CIDR, DNS_SERVICE_IP, NODE_IP, nsenter

NODE_NAME = "k8s-sa-node"
CGROUP_ROOT = "/k8s-sa-node"


@dataclass
class NodeCertificates:
    """Client certificates of the node's components, issued by the control plane's CA."""

    directory: Path
    kubelet: tuple[Path, Path]
    apiserver_kubelet_client: tuple[Path, Path]
    kube_proxy: tuple[Path, Path]
    scheduler: tuple[Path, Path]

    @classmethod
    def generate(cls, ca: CertificateAuthority, directory: Path) -> NodeCertificates:
        directory.mkdir(parents=True, exist_ok=True)

        def issue(common_name: str, stem: str, organization: str | None = None) -> tuple[Path, Path]:
            return ca.issue(common_name, organization=organization, client=True).write(directory, stem)

        return cls(
            directory,
            kubelet=issue(f"system:node:{NODE_NAME}", "kubelet", "system:nodes"),
            apiserver_kubelet_client=issue(
                "kube-apiserver-kubelet-client", "apiserver-kubelet", "system:masters"
            ),
            kube_proxy=issue("system:kube-proxy", "kube-proxy"),
            scheduler=issue("system:kube-scheduler", "scheduler"),
        )


def kubeconfig_for(path: Path, server: str, ca: Path, pair: tuple[Path, Path]) -> Path:
    """A node component's kubeconfig: its client certificate ``pair`` against ``server``."""
    return client_certificate_kubeconfig(server, ca, pair[0], pair[1]).write(path)


def kubelet_config(workdir: Path, containerd_socket: Path, ca: Path) -> Path:
    """Write the KubeletConfiguration (JSON, which the kubelet reads as YAML)."""
    resolv = workdir / "resolv.conf"
    # Pods with dnsPolicy Default (CoreDNS itself) get this: no upstream resolver, nothing leaves.
    resolv.write_text("nameserver 127.0.0.1\noptions ndots:1\n")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupRoot": CGROUP_ROOT,
        "containerRuntimeEndpoint": f"unix://{containerd_socket}",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": 10248,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(resolv),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "podPidsLimit": 1024,
        "serializeImagePulls": False,
        "registerNode": True,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "syncFrequency": "10s",
        "podLogsDir": str(workdir / "pod-logs"),
        "staticPodPath": "",
        "maxPods": 30,
    }
    path = workdir / "kubelet-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def kubelet_process(
    binary: Path,
    workdir: Path,
    config: Path,
    kubeconfig: Path,
    log_path: Path,
    *,
    owner_pid: int | None,
    die_with_parent: bool,
) -> Process:
    argv = [
        str(binary),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={workdir / 'root'}",
        f"--cert-dir={workdir / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=2",
    ]
    return Process(
        "kubelet",
        nsenter(argv),
        log_path,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        owner_pid=owner_pid,
        die_with_parent=die_with_parent,
    )


def kube_proxy_process(
    binary: Path,
    workdir: Path,
    kubeconfig: Path,
    log_path: Path,
    *,
    owner_pid: int | None,
    die_with_parent: bool,
) -> Process:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"{LOOPBACK}:10256",
        "metricsBindAddress": f"{LOOPBACK}:10249",
        "hostnameOverride": NODE_NAME,
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "kube-proxy-config.json"
    path.write_text(json.dumps(config, indent=2))
    return Process(
        "kube-proxy",
        nsenter([str(binary), f"--config={path}", "--v=2"]),
        log_path,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        owner_pid=owner_pid,
        die_with_parent=die_with_parent,
    )
