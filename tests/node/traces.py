"""What of a local node exists on this machine right now: the traces a crashed run can leave.

Plain functions without pytest, so an inner pytest run can load this file by path and observe the
machine at a precise moment (right after the next start's sweep) with the same code as the outer test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pytest_k8s_sa.base.paths import cache_root
from pytest_k8s_sa.components.node.kubelet import CGROUP_ROOT
from pytest_k8s_sa.components.node.network import GUARD_CHAIN, HOST_VETH, NETNS_PATH
from pytest_k8s_sa.components.node.node import state_dir

NODE_RANGES = ("198.18.", "198.19.")  # 198.18.0.0/15: every address the node uses
SHIM = "containerd-shim-runc-v2"


def _run(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30).stdout


def containers() -> list[str]:
    """Processes in the node's cgroups (containers) and the node's containerd shims, as ``pid exe``."""
    built = f"{cache_root()}/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = os.readlink(proc / "exe")
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if (
            f":{CGROUP_ROOT}/" in cgroups
            or f":{CGROUP_ROOT}\n" in cgroups
            or (Path(exe).name == SHIM and exe.startswith(built))
        ):
            found.append(f"{proc.name} {exe}")
    return sorted(found)


def mounts() -> list[str]:
    """Mounts under the node's state folder (containerd, kubelet volumes, pod netns), the node's
    namespace and CNI's pod namespaces in /run/netns, as ``mount-id point``."""
    prefixes = (f"{state_dir()}/", str(NETNS_PATH), "/run/netns/cni-")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].replace("\\040", " ")
        if point.startswith(prefixes):
            found.append(f"{fields[0]} {point}")
    return sorted(found)


def netns() -> list[str]:
    """The node's network namespace (its inode: a new namespace has another one)."""
    try:
        return [str(NETNS_PATH.stat().st_ino)]
    except OSError:
        return []


def links() -> list[str]:
    """The host end of the node's veth pair."""
    return [line.split(":")[1].strip() for line in _run("ip", "-o", "link", "show", HOST_VETH).splitlines()]


def rules() -> list[str]:
    """iptables rules of the egress guard and jumps to it (filter table), and any NAT rule for the range."""
    lines = _run("iptables", "-w", "-S").splitlines() + _run("iptables", "-w", "-t", "nat", "-S").splitlines()
    return [line for line in lines if GUARD_CHAIN in line.split() or any(r in line for r in NODE_RANGES)]


def routes() -> list[str]:
    """Host routes to or through the node's range (the unreachable /15, pods, Services)."""
    return [
        line for line in _run("ip", "-4", "route", "show").splitlines() if any(r in line for r in NODE_RANGES)
    ]


def observe() -> dict[str, list[str]]:
    return {
        "containers": containers(),
        "mounts": mounts(),
        "netns": netns(),
        "links": links(),
        "rules": rules(),
        "routes": routes(),
    }
