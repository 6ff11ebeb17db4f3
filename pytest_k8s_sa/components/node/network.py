"""The node's network: an egress guard first, then a network namespace joined to the host by a veth pair.

Layout (all addresses from 198.18.0.0/15, RFC 2544, reserved for network testing)::

    host netns                               node netns "k8s-sa-node"
    k8ssa-h 198.18.255.1/30  <--veth-->      k8ssa-n 198.18.255.2/30 (node IP)
    kube-apiserver binds 198.18.255.1        containerd, kubelet, kube-proxy, pods
    198.19.0.0/16  via 198.18.255.2          k8ssa-br0 198.19.0.1/24 (CNI bridge, pods)
    198.18.0.0/20  via 198.18.255.2          198.18.0.0/20 via 198.18.255.1, unreachable default
    unreachable 198.18.0.0/15

**The guard comes first.** Before any of those addresses exists the host gets an ``unreachable``
route for the whole /15 (more specific routes to the veth still win) and iptables rules that
REJECT every packet to 198.18.0.0/15, or from it, leaving by any interface other than ``lo`` and
the veth (chain ``K8S-SA-GUARD``, jumped to from OUTPUT and FORWARD). :meth:`NodeNetwork.start`
verifies the guard before it creates the namespace, so a missing rule stops the start instead of
letting one request follow the host's default route out (the prototype saw exactly that once).
No masquerade anywhere; the host keeps ``ip_forward`` as it is (0 here), the node namespace has no
route out but the veth, and the CNI bridge runs with ``ipMasq: false``.

Processes run in the namespace through ``nsenter --net=/run/netns/k8s-sa-node`` and never through
``ip netns exec``, which would give them a private mount namespace: the kubelet's volume mounts
must be visible to containerd.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..controlplane import SERVICE_CLUSTER_IP_RANGE
from .host import CNI_BIN_DIR, NodeError, Runner

RESERVED_RANGE = "198.18.0.0/15"
NETNS = "k8s-sa-node"
NETNS_PATH = Path("/run/netns") / NETNS
HOST_VETH = "k8ssa-h"
NODE_VETH = "k8ssa-n"
BRIDGE = "k8ssa-br0"
HOST_IP = "198.18.255.1"
NODE_IP = "198.18.255.2"
LINK_PREFIX = 30
SERVICE_RANGE = SERVICE_CLUSTER_IP_RANGE
CLUSTER_CIDR = "198.19.0.0/16"
POD_CIDR = "198.19.0.0/24"
POD_GATEWAY = "198.19.0.1"
DNS_SERVICE_IP = "198.18.0.10"
GUARD_CHAIN = "K8S-SA-GUARD"
GUARD_COMMENT = "pytest-k8s-sa local-node egress guard"
ALLOWED_INTERFACES = ("lo", HOST_VETH)

# (chain, match) pairs that jump to the guard chain: to or from the reserved range.
_JUMPS = (
    ("OUTPUT", "-d"),
    ("OUTPUT", "-s"),
    ("FORWARD", "-d"),
    ("FORWARD", "-s"),
)


def nsenter(argv: list[str]) -> list[str]:
    """``argv`` run inside the node's network namespace (same mount namespace as the host)."""
    return ["nsenter", f"--net={NETNS_PATH}", "--", *argv]


class NodeNetwork:
    """Creates and removes the guard, the namespace, the veth pair and the routes."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.run = runner or Runner()

    # --- the egress guard ----------------------------------------------------------------------

    def install_guard(self) -> None:
        """Unreachable route for 198.18.0.0/15 and the REJECT rules; idempotent."""
        existing = self.run("ip", "-4", "route", "show", "exact", RESERVED_RANGE).strip()
        if existing and not existing.startswith("unreachable"):
            raise NodeError(
                f"the host already routes {RESERVED_RANGE} ({existing!r}); the local node will not "
                "share that range with something else"
            )
        if not existing:
            self.run("ip", "-4", "route", "add", "unreachable", RESERVED_RANGE)
        if not self.run.ok("iptables", "-w", "-n", "-L", GUARD_CHAIN):
            self.run("iptables", "-w", "-N", GUARD_CHAIN)
        self.run("iptables", "-w", "-F", GUARD_CHAIN)
        for interface in ALLOWED_INTERFACES:
            self.run("iptables", "-w", "-A", GUARD_CHAIN, "-o", interface, "-j", "RETURN")
        self.run("iptables", "-w", "-A", GUARD_CHAIN, "-j", "REJECT", "--reject-with", "icmp-net-prohibited")
        for chain, match in _JUMPS:
            if not self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                self.run("iptables", "-w", "-I", chain, "1", *self._jump(match))

    @staticmethod
    def _jump(match: str) -> list[str]:
        return [match, RESERVED_RANGE, "-m", "comment", "--comment", GUARD_COMMENT, "-j", GUARD_CHAIN]

    def guard_problems(self) -> list[str]:
        """What is missing from the guard (empty when it is complete)."""
        problems = []
        route = self.run("ip", "-4", "route", "show", "exact", RESERVED_RANGE).strip()
        if not route.startswith("unreachable"):
            problems.append(f"no `unreachable {RESERVED_RANGE}` route on the host (found {route!r})")
        rules = (
            self.run("iptables", "-w", "-S", GUARD_CHAIN)
            if self.run.ok("iptables", "-w", "-n", "-L", GUARD_CHAIN)
            else ""
        )
        if "-j REJECT" not in rules:
            problems.append(f"iptables chain {GUARD_CHAIN} is missing or has no REJECT rule")
        for chain, match in _JUMPS:
            if not self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                problems.append(f"no jump from {chain} ({match} {RESERVED_RANGE}) to {GUARD_CHAIN}")
        return problems

    def remove_guard(self) -> None:
        for chain, match in _JUMPS:
            while self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                self.run("iptables", "-w", "-D", chain, *self._jump(match))
        if self.run.ok("iptables", "-w", "-n", "-L", GUARD_CHAIN):
            self.run("iptables", "-w", "-F", GUARD_CHAIN)
            self.run("iptables", "-w", "-X", GUARD_CHAIN)
        route = self.run("ip", "-4", "route", "show", "exact", RESERVED_RANGE).strip()
        if route.startswith("unreachable"):
            self.run("ip", "-4", "route", "del", "unreachable", RESERVED_RANGE)

    # --- namespace, veth, routes ---------------------------------------------------------------

    def start(self) -> None:
        """Guard, verify the guard, then the namespace and its links. Call :meth:`stop` on failure."""
        self.install_guard()
        problems = self.guard_problems()
        if problems:
            raise NodeError(
                "the egress guard is incomplete, not starting the node:\n  " + "\n  ".join(problems)
            )
        ip, nsip = ("ip",), ("ip", "-n", NETNS)
        self.run(*ip, "netns", "add", NETNS)
        self.run(*ip, "link", "add", HOST_VETH, "type", "veth", "peer", "name", NODE_VETH)
        self.run(*ip, "link", "set", NODE_VETH, "netns", NETNS)
        self.run(*ip, "addr", "add", f"{HOST_IP}/{LINK_PREFIX}", "dev", HOST_VETH)
        self.run(*ip, "link", "set", HOST_VETH, "up")
        self.run(*nsip, "link", "set", "lo", "up")
        self.run(*nsip, "addr", "add", f"{NODE_IP}/{LINK_PREFIX}", "dev", NODE_VETH)
        self.run(*nsip, "link", "set", NODE_VETH, "up")
        # Inside: nothing but the veth. The ClusterIP route lets host-network processes of the node
        # (kube-proxy's own checks, the kubelet's probes) reach Services; kube-proxy DNATs them.
        self.run(*nsip, "route", "add", "unreachable", "default")
        self.run(*nsip, "route", "add", SERVICE_RANGE, "via", HOST_IP)
        self.run(*nsenter(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        # Host side: pods and Services are reached through the node; everything else stays unreachable.
        self.run(*ip, "route", "add", CLUSTER_CIDR, "via", NODE_IP)
        self.run(*ip, "route", "add", SERVICE_RANGE, "via", NODE_IP)

    def stop(self) -> None:
        """Remove the namespace and links (not the guard: see :meth:`remove_guard`); idempotent."""
        if self.exists():
            # Whatever still runs in the node's namespace is the node's (a crashed run's) own.
            for pid in self.run("ip", "netns", "pids", NETNS, check=False).split():
                self.run("kill", "-KILL", pid, check=False)
        self.run("ip", "netns", "del", NETNS, check=False)
        self.run("ip", "link", "del", HOST_VETH, check=False)
        for route in (CLUSTER_CIDR, SERVICE_RANGE):
            self.run("ip", "-4", "route", "del", route, "via", NODE_IP, check=False)

    def exists(self) -> bool:
        return NETNS_PATH.exists()


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> Path:
    """The CNI network of the node: a bridge without masquerade, host-local IPAM in ``ipam_dir``."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": "k8s-sa-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    path = conf_dir / "10-k8s-sa-node.conflist"
    path.write_text(json.dumps(config, indent=2))
    return path


__all__ = ["CNI_BIN_DIR", "NodeNetwork", "nsenter", "write_cni_config"]
