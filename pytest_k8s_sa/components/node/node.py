"""The local node's life cycle: start in a safe order, stop, and sweep what a crashed run left.

Start (:meth:`LocalNode.start_network`, then the control plane, then :meth:`LocalNode.start_node`):

1. take the machine-wide lock (one node per machine: kubelet and containerd use fixed host paths);
2. sweep leftovers of a crashed run (processes, containers, mounts, cgroups, netns, rules, routes);
3. write the state file naming everything that will be created, *then* create it:
   egress guard (verified), network namespace and veth (:mod:`.network`);
4. (the provider starts the control plane on the veth's host address);
5. containerd, image imports, kubelet and kube-proxy in the namespace; wait for the node to be
   Ready; CoreDNS.

Stop runs the same steps backwards and is idempotent, so the sweep of a crashed run *is* the stop,
driven by the state file instead of live objects. The egress guard goes last.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
from filelock import FileLock, Timeout

from ...base.paths import cache_root
from ...base.process import Process, sweep_orphans
from ...base.waiting import WaitTimeout, wait_until
from ..binaries import stderr_progress
from . import dns, images
from .containerd import Containerd
from .host import NodeError, Runner
from .kubelet import (
    CGROUP_ROOT,
    NODE_NAME,
    NodeCertificates,
    kube_proxy_process,
    kubeconfig_for,
    kubelet_config,
    kubelet_process,
)
from .network import NETNS_PATH, NodeNetwork, write_cni_config

CGROUP_BASE = Path("/sys/fs/cgroup")
PROJECTED_PLUGIN_DIR = "kubernetes.io~projected"
"""The folder under a pod's ``volumes/`` where the kubelet keeps projected volumes (plugin name with
``/`` escaped as ``~``)."""
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/cni",
    "/run/containerd",
    "/opt/containerd",
    "/var/run/nri",
    "/run/netns",
)
"""Host paths the kubelet, containerd or ``ip netns`` create (some are hard-coded upstream); the
ones that did not exist before the node started are removed when it stops."""


def state_dir() -> Path:
    return cache_root() / "local-node"


def _mount_points() -> list[str]:
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            points.append(line.split()[4].replace("\\040", " "))
    return points


def _cgroup_hierarchies() -> list[Path]:
    if not CGROUP_BASE.is_dir():
        return []
    return [
        p for p in sorted(CGROUP_BASE.iterdir()) if p.is_dir() and not p.is_symlink() and os.path.ismount(p)
    ]


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / CGROUP_ROOT.lstrip("/")
        for procs in root.rglob("cgroup.procs") if root.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
    return pids


def _pids_running(executables: set[str]) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "exe") in executables:
                    found.add(int(entry.name))
    return found


@dataclass
class LocalNode:
    """One node under ``workdir``; ``binaries`` from
    :func:`~pytest_k8s_sa.components.binaries.node_binaries`."""

    workdir: Path
    binaries: dict[str, Path]
    owner_pid: int | None = None
    runner: Runner = field(default_factory=Runner)
    apt_mirror: str | None = None
    """Where the python image's packages come from (None: this machine's apt sources)."""
    lock_wait_seconds: float = 5.0
    """How long :meth:`start_network` waits for the machine's node lock (``--k8s-node-wait``)."""
    progress: Callable[[str], None] = field(default=stderr_progress, repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.network = NodeNetwork(self.runner)
        self.containerd = Containerd(
            self.binaries["containerd"],
            self.binaries["ctr"],
            self.workdir / "containerd",
            self.workdir / "cni",
        )
        self._processes: dict[str, Process] = {}
        self._lock: FileLock | None = None
        self._kubelet_args: dict[str, Any] = {}

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def holds_lock(self) -> bool:
        """True between a successful :meth:`start_network` and :meth:`stop_network`: only then do the
        node's host paths, state file and work folder belong to this run."""
        return self._lock is not None

    @property
    def log_paths(self) -> dict[str, Path]:
        return {name: self.logs / f"{name}.log" for name in ("containerd", "kubelet", "kube-proxy")}

    # --- start ---------------------------------------------------------------------------------

    def start_network(self) -> None:
        """Lock, sweep, record state, guard and namespace. The apiserver may bind the host IP after."""
        state_dir().mkdir(parents=True, exist_ok=True)
        self._lock = self._take_node_lock()
        sweep(self.runner)
        remove_tree(self.workdir)
        state = {
            "workdir": str(self.workdir),
            "created_host_paths": [p for p in HOST_PATHS if not os.path.lexists(p)],
            "run_netns_was_mount": "/run/netns" in _mount_points(),
            "executables": [str(p) for p in self.binaries.values()],
            "started_at": time.time(),
        }
        (state_dir() / "state.json").write_text(json.dumps(state, indent=2))
        started = time.monotonic()
        self.network.start()
        self.timings["network_seconds"] = round(time.monotonic() - started, 2)

    def _take_node_lock(self) -> FileLock:
        """The machine-wide node lock, waiting up to ``lock_wait_seconds`` and saying so every 30 s.

        A file lock: the kernel releases it when its holder dies, so waiting can never outlive a
        crashed run, only a live one.
        """
        lock = FileLock(str(state_dir() / "node.lock"))
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                lock.acquire(timeout=max(0.0, min(30.0, remaining)))
                return lock
            except Timeout:
                if time.monotonic() >= deadline:
                    raise NodeError(
                        "another local node runs on this machine (one at a time: kubelet and containerd "
                        f"use fixed host paths); waited {self.lock_wait_seconds:g} s for lock "
                        f"{lock.lock_file}. Wait longer with --k8s-node-wait SECONDS (ini k8s_sa_node_wait, "
                        "$K8S_SA_NODE_WAIT)."
                    ) from None
                left = deadline - time.monotonic()
                self.progress(f"waiting for the local node lock held by another run ({left:.0f} s left)")

    def start_node(
        self,
        *,
        server: str,
        certs: NodeCertificates,
        ca_path: Path,
        api_client: kubernetes.client.ApiClient,
        die_with_parent: bool = True,
        timeout: float = 180.0,
    ) -> None:
        """containerd, images, kubelet, kube-proxy, CoreDNS; returns when the node is Ready and DNS serves."""
        started = time.monotonic()
        common: dict[str, Any] = {"owner_pid": self.owner_pid, "die_with_parent": die_with_parent}
        self._prepare_cgroups()
        write_cni_config(self.workdir / "cni", self.workdir / "cni-ipam")
        self.containerd.write_config()
        self._start("containerd", self.containerd.process(self.log_paths["containerd"], **common), timeout)
        self.timings["containerd_seconds"] = round(time.monotonic() - started, 2)
        for archive in self.image_archives():
            self.containerd.import_image(archive)
        self.timings["images_imported_seconds"] = round(time.monotonic() - started, 2)
        kubelet_dir = self.workdir / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        self._kubelet_args = {
            "binary": self.binaries["kubelet"],
            "workdir": kubelet_dir,
            "config": kubelet_config(kubelet_dir, self.containerd.socket, ca_path),
            "kubeconfig": kubeconfig_for(kubelet_dir / "kubeconfig", server, ca_path, certs.kubelet),
            "log_path": self.log_paths["kubelet"],
            **common,
        }
        self._start("kubelet", kubelet_process(**self._kubelet_args), timeout)
        proxy_dir = self.workdir / "kube-proxy"
        proxy_kubeconfig = kubeconfig_for(proxy_dir / "kubeconfig", server, ca_path, certs.kube_proxy)
        self._start(
            "kube-proxy",
            kube_proxy_process(
                self.binaries["kube-proxy"],
                proxy_dir,
                proxy_kubeconfig,
                self.log_paths["kube-proxy"],
                **common,
            ),
            timeout,
        )
        self._wait_ready(api_client, timeout)
        self.timings["node_ready_seconds"] = round(time.monotonic() - started, 2)
        dns.deploy(api_client, timeout)
        self.timings["dns_ready_seconds"] = round(time.monotonic() - started, 2)

    def _start(self, name: str, proc: Process, timeout: float) -> None:
        self._processes[name] = proc
        proc.start(timeout=timeout)

    def image_archives(self) -> list[Path]:
        pause = images.binary_image(
            self.binaries["pause"], [images.PAUSE_IMAGE, images.PLACEHOLDER_ALIAS], "/pause"
        )
        coredns = images.binary_image(self.binaries["coredns"], [images.COREDNS_IMAGE], "/coredns")
        return [pause, coredns, images.python_image(self.runner, apt_mirror=self.apt_mirror)]

    def _prepare_cgroups(self) -> None:
        """``/k8s-sa-node`` in every v1 hierarchy (the kubelet's cgroupRoot must exist)."""
        for hierarchy in _cgroup_hierarchies():
            path = hierarchy / CGROUP_ROOT.lstrip("/")
            with contextlib.suppress(OSError):
                path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    with contextlib.suppress(OSError):
                        (path / knob).write_text((hierarchy / knob).read_text())

    def _wait_ready(self, api_client: kubernetes.client.ApiClient, timeout: float) -> None:
        core = kubernetes.client.CoreV1Api(api_client)
        kubelet = self._processes["kubelet"]

        def ready() -> bool:
            node = core.read_node(NODE_NAME)
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

        kubelet.wait_for(ready, timeout, what=f"registered with node {NODE_NAME} Ready")

    def load_image_archive(self, path: Path) -> list[str]:
        """Import an image archive into the running node's containerd; the references it holds."""
        if "containerd" not in self._processes:
            raise NodeError("the local node is not running: start it before loading images")
        return self.containerd.import_image(path)

    def read_projected_file(self, pod_uid: str, volume: str, path: str) -> str:
        """A file of a pod's projected volume, from the kubelet's root folder on this host."""
        root = self.workdir / "kubelet" / "root"
        return (root / "pods" / pod_uid / "volumes" / PROJECTED_PLUGIN_DIR / volume / path).read_text()

    def restart_kubelet(self, timeout: float = 60.0) -> None:
        """Stop and start the kubelet: its token cache is empty afterwards, so every projected
        service-account token is requested again and its file replaced in the running pods."""
        proc = self._processes.get("kubelet")
        if proc is None or not self._kubelet_args:
            raise NodeError("the kubelet is not running")
        proc.stop()
        self._start("kubelet", kubelet_process(**self._kubelet_args), timeout)

    # --- stop ----------------------------------------------------------------------------------

    def stop_components(self) -> None:
        """Stop the kubelet, kube-proxy, every container and containerd; unmount; remove cgroups.

        Does nothing unless this node holds the machine-wide lock: a node that never got the lock
        started nothing, and the cgroups, shims, mounts and network it would sweep belong to the
        node that does hold it (another run on this machine)."""
        if self._lock is None:
            return
        for name in ("kubelet", "kube-proxy"):
            proc = self._processes.pop(name, None)
            if proc is not None:
                proc.stop()
        containerd = self._processes.pop("containerd", None)
        if containerd is not None and containerd.running():
            with contextlib.suppress(Exception):
                self.containerd.remove_all_containers()
        if containerd is not None:
            containerd.stop()
        _stop_leftovers(self.runner, self.workdir, {str(p) for p in self.binaries.values()})

    def stop_network(self) -> None:
        """Namespace and links, the host paths the node created, then the guard; drop state and lock.

        Like :meth:`stop_components`, a no-op without the lock: the state file, namespace and guard
        then belong to the node that holds it."""
        if self._lock is None:
            return
        try:
            _stop_network(self.runner, _read_state())
            (state_dir() / "state.json").unlink(missing_ok=True)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def remove_tree(path: Path) -> None:
    """``rm -rf path``, refused while anything is mounted below it (never delete through a mount)."""
    mounted = [p for p in _mount_points() if p.startswith(f"{path}/") or p == str(path)]
    if mounted:
        raise NodeError(f"not removing {path}: still mounted below it: {', '.join(mounted[:5])}")
    shutil.rmtree(path, ignore_errors=True)


def _read_state() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((state_dir() / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state


def _kill_until_gone(pids_of: Any, what: str) -> None:
    def gone() -> bool:
        pids = pids_of()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return not pids

    with contextlib.suppress(WaitTimeout):
        wait_until(gone, 15, f"{what} still running")


def _stop_leftovers(runner: Runner, workdir: Path | None, executables: set[str]) -> None:
    """Processes in the node's cgroups and containerd shims, mounts under ``workdir``, cgroups."""
    _kill_until_gone(_cgroup_pids, "container processes")
    shims = {e for e in executables if e.endswith("containerd-shim-runc-v2")}
    if shims:
        _kill_until_gone(lambda: _pids_running(shims), "containerd shims")
    prefixes = [str(workdir) + "/"] if workdir else []
    prefixes.append("/run/netns/cni-")
    for point in sorted(
        (p for p in _mount_points() if any(p.startswith(prefix) or p + "/" == prefix for prefix in prefixes)),
        key=len,
        reverse=True,
    ):
        if not runner.ok("umount", point):
            runner.ok("umount", "-l", point)
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / CGROUP_ROOT.lstrip("/")
        if root.is_dir():
            for directory in sorted(
                (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


def _stop_network(runner: Runner, state: dict[str, Any]) -> None:
    network = NodeNetwork(runner)
    network.stop()
    for path in state.get("created_host_paths", []):
        if path == "/run/netns":
            continue
        shutil.rmtree(path, ignore_errors=True)
    netns_dir = Path("/run/netns")
    if state and not state.get("run_netns_was_mount") and netns_dir.is_dir() and not any(netns_dir.iterdir()):
        if "/run/netns" in _mount_points():
            runner.ok("umount", "/run/netns")
        if "/run/netns" in state.get("created_host_paths", []):
            with contextlib.suppress(OSError):
                netns_dir.rmdir()
    network.remove_guard()


def sweep(runner: Runner | None = None) -> bool:
    """Remove what a crashed node left (the caller holds the node lock); True if there was anything."""
    run = runner or Runner()
    state = _read_state()
    found = bool(state) or NETNS_PATH.exists() or bool(_cgroup_pids())
    sweep_orphans()
    workdir = Path(state["workdir"]) if state.get("workdir") else None
    _stop_leftovers(run, workdir, set(state.get("executables", [])))
    _stop_network(run, state)
    (state_dir() / "state.json").unlink(missing_ok=True)
    return found
