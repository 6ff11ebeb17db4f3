"""The ``local-node`` provider: the embedded control plane plus a real node (kubelet, containerd).

What kind does, without Docker and without a registry: kube-scheduler, a kubelet, kube-proxy,
containerd and CoreDNS built from Go modules, runc and the CNI plugins from Debian, locally built
images, all in a network namespace that cannot reach anything off this machine (see
:mod:`pytest_k8s_sa.components.node`). The manifests in ``fixtures/manifests`` run there as real pods, so the
kubelet projects and rotates their tokens for real.

Linux and root only; :func:`pytest_k8s_sa.components.node.host.missing_prerequisites` says what is missing
(and which ``apt-get install`` fixes it) elsewhere. One node per machine; not shared between
pytest-xdist workers (run without ``-n``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..base.errors import K8sSAError
from ..base.process import Process
from ..components.binaries import DEFAULT_K8S_VERSION, find_binaries, node_binaries
from ..components.controlplane import ControlPlane, Scheduler
from ..components.node.host import NodeError, missing_prerequisites
from ..components.node.images import PYTHON_IMAGE
from ..components.node.kubelet import NodeCertificates
from ..components.node.network import CLUSTER_CIDR, HOST_IP, SERVICE_RANGE
from ..components.node.node import LocalNode, remove_tree, state_dir, sweep
from ..components.pki import CertificateAuthority
from .base import Capabilities, ClusterInfo
from .keys import ApiServerKeyControl


class LocalNodeProvider:
    """Start the control plane and one node; :meth:`destroy` removes every trace of both.

    Also the cluster's :class:`~pytest_k8s_sa.providers.base.NodeControl` (``ClusterInfo.node_control``):
    restart the kubelet, load image archives into the node.
    """

    name = "local-node"

    def __init__(
        self,
        *,
        version: str = DEFAULT_K8S_VERSION,
        bin_dir: str | None = None,
        owner_pid: int | None = None,
        keep: bool = False,
        apt_mirror: str | None = None,
        node_wait_seconds: float = 5.0,
    ) -> None:
        self.version = version
        self.apt_mirror = apt_mirror
        self.node_wait_seconds = node_wait_seconds
        self.bin_dir = bin_dir
        self.owner_pid = owner_pid
        self.keep = keep
        self.workdir = state_dir() / "work"
        self.control_plane: ControlPlane | None = None
        self.scheduler: Process | None = None
        self.node: LocalNode | None = None
        self.timings: dict[str, float] = {}

    def create(self) -> ClusterInfo:
        problems = missing_prerequisites()
        if problems:
            raise NodeError("the local-node provider cannot run here:\n  - " + "\n  - ".join(problems))
        started = time.monotonic()
        binaries = find_binaries(self.version, self.bin_dir)
        node_bins = node_binaries(self.version)
        self.timings["binaries_seconds"] = round(time.monotonic() - started, 2)
        node = LocalNode(
            self.workdir / "node",
            node_bins,
            owner_pid=self.owner_pid,
            apt_mirror=self.apt_mirror,
            lock_wait_seconds=self.node_wait_seconds,
        )
        self.node = node
        try:
            # Images first: the python image may need the apt sources, long before the node exists.
            node.image_archives()
            started = time.monotonic()
            node.start_network()  # sweeps a crashed run, then guard -> namespace
            shutil.rmtree(self.workdir / "control-plane", ignore_errors=True)
            ca = CertificateAuthority()
            cp = ControlPlane(
                self.workdir / "control-plane",
                binaries,
                owner_pid=self.owner_pid,
                bind_address=HOST_IP,
                ca=ca,
            )
            certs = NodeCertificates.generate(ca, self.workdir / "node" / "pki")
            self._configure(cp, certs)
            self.control_plane = cp
            cp.start()
            self.timings["control_plane_seconds"] = round(time.monotonic() - started, 2)
            self.scheduler = Scheduler(
                node_bins["kube-scheduler"],
                self._component_kubeconfig(cp, "scheduler", certs.scheduler),
                cp.certs,
                cp.workdir / "logs" / "kube-scheduler.log",
            ).process(owner_pid=self.owner_pid, die_with_parent=True)
            self.scheduler.start(timeout=60)
            api_client = ClusterInfo(self.name, cp.kubeconfig, _capabilities()).api_client()
            try:
                node.start_node(server=cp.server, certs=certs, ca_path=cp.certs.ca, api_client=api_client)
            finally:
                api_client.close()
            self.timings.update(node.timings)
            self.timings["total_seconds"] = round(time.monotonic() - started, 2)
        except BaseException:
            self.destroy()
            raise
        return ClusterInfo(
            provider=self.name,
            kubeconfig=cp.kubeconfig,
            capabilities=_capabilities(),
            issuer=cp.issuer,
            api_audiences=cp.api_audiences,
            signing_key=cp.certs.sa_signing_key,
            cluster_ca=ca,
            key_control=ApiServerKeyControl(
                cp.certs.signing_keys,
                lambda: cp.restart_apiserver(timeout=90.0),
                self.workdir / "signing-keys.lock",
            ),
            log_paths={**cp.log_paths, "kube-scheduler": self.scheduler.log_path, **node.log_paths},
            node_control=self,
            review_log=cp.review_log,
        )

    @staticmethod
    def _component_kubeconfig(cp: ControlPlane, name: str, pair: tuple[Path, Path]) -> Path:
        from ..components.node.kubelet import kubeconfig_for

        return kubeconfig_for(cp.workdir / f"{name}.kubeconfig", cp.server, cp.certs.ca, pair)

    @staticmethod
    def _configure(cp: ControlPlane, certs: NodeCertificates) -> None:
        api = cp.apiserver_flags
        api["authorization-mode"] = "Node,RBAC"
        api["enable-admission-plugins"] = "NodeRestriction"
        api["kubelet-client-certificate"] = str(certs.apiserver_kubelet_client[0])
        api["kubelet-client-key"] = str(certs.apiserver_kubelet_client[1])
        api["kubelet-preferred-address-types"] = "InternalIP"
        # The default (lease) reconciler: the `kubernetes` Service points at the veth address.
        api["endpoint-reconciler-type"] = None
        cm = cp.controller_manager_flags
        cm["controllers"] = "*"  # Deployments, ReplicaSets, EndpointSlices, node IPAM, GC, ...
        cm["allocate-node-cidrs"] = "true"
        cm["cluster-cidr"] = CLUSTER_CIDR
        cm["node-cidr-mask-size"] = "24"
        cm["service-cluster-ip-range"] = SERVICE_RANGE

    def restart_kubelet(self) -> None:
        if self.node is None:
            raise NodeError("the local node is not running")
        self.node.restart_kubelet()

    def read_projected_file(self, pod_uid: str, volume: str, path: str) -> str:
        if self.node is None:
            raise NodeError("the local node is not running")
        return self.node.read_projected_file(pod_uid, volume, path)

    def load_image_archive(self, path: Path) -> list[str]:
        """Import an OCI or docker-archive tarball into the node's containerd (``ctr images import``)."""
        if self.node is None:
            raise NodeError("the local node is not running")
        return self.node.load_image_archive(Path(path))

    def export_logs(self, destination: Path) -> list[Path]:
        destination.mkdir(parents=True, exist_ok=True)
        written = []
        for folder in (self.workdir / "control-plane" / "logs", self.workdir / "node" / "logs"):
            for log in folder.glob("*.log"):
                written.append(Path(shutil.copy2(log, destination / log.name)))
        return written

    def destroy(self) -> None:
        """Scheduler, node components, control plane, network and guard; safe to call twice."""
        errors: list[str] = []
        # A run that never took the node lock owns nothing under the shared work folder: another
        # run's node lives there (and its teardown is that run's business).
        owns_workdir = self.node is not None and self.node.holds_lock
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.node is not None:
            try:
                self.node.stop_components()
            except Exception as exc:  # keep going: the network and guard must still go
                errors.append(f"node components: {exc}")
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.node is not None:
            try:
                self.node.stop_network()
            except Exception as exc:
                errors.append(f"network: {exc}")
            self.node = None
        if owns_workdir and not self.keep and not errors:
            try:
                remove_tree(self.workdir)
            except NodeError as exc:
                errors.append(str(exc))
        if errors:
            raise K8sSAError("local-node teardown incomplete: " + "; ".join(errors))


def _capabilities() -> Capabilities:
    return Capabilities(
        holds_signing_key=True,
        runs_pods=True,
        controller_manager=True,
        default_workload_image=PYTHON_IMAGE,
        owns_cluster=True,
    )


__all__ = ["LocalNodeProvider", "sweep"]
