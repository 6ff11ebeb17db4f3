"""The egress guard of the local node: installed and verified before anything uses 198.18.0.0/15.

The order test records the commands instead of running them (no root needed). The live test
installs the guard for real, checks that a connection to a Service address fails locally at once,
and removes the guard again: it needs root and ``iptables`` (the ``host_commands`` marker skips it,
naming them, on a machine without).
"""

from __future__ import annotations

import errno
import socket

import pytest
from filelock import FileLock, Timeout

from pytest_k8s_sa.components.node import network
from pytest_k8s_sa.components.node.host import NodeError, Runner
from pytest_k8s_sa.components.node.network import NodeNetwork
from pytest_k8s_sa.components.node.node import state_dir


def _first(history: list[list[str]], predicate) -> int:
    return next(i for i, argv in enumerate(history) if predicate(argv))


class FakeHost(Runner):
    """Records commands; answers the guard's checks as a host would once the guard is in place."""

    def __call__(self, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
        super().__call__(*argv, check=check, timeout=timeout)
        if argv[:4] == ("ip", "-4", "route", "show"):
            added = any(a[:5] == ["ip", "-4", "route", "add", "unreachable"] for a in self.history)
            return f"unreachable {network.RESERVED_RANGE}" if added else ""
        if argv[:3] == ("iptables", "-w", "-S"):
            return "-A K8S-SA-GUARD -j REJECT" if any("REJECT" in a for a in self.history) else ""
        return ""

    def ok(self, *argv: str) -> bool:
        self.history.append(list(argv))
        if argv[:3] == ("iptables", "-w", "-C"):  # the jump exists once it was inserted
            return ["iptables", "-w", "-I", argv[3], "1", *argv[4:]] in self.history
        if argv[:4] == ("iptables", "-w", "-n", "-L"):
            return any(a[:3] == ["iptables", "-w", "-N"] for a in self.history)
        return True


def test_guard_precedes_every_use_of_the_reserved_range():
    runner = FakeHost(dry_run=True)
    NodeNetwork(runner).start()
    history = runner.history
    route = _first(history, lambda a: a[:5] == ["ip", "-4", "route", "add", "unreachable"])
    rejects = _first(history, lambda a: "REJECT" in a)
    jumps = [i for i, a in enumerate(history) if a[:3] == ["iptables", "-w", "-I"]]
    verified = next(
        i for i in range(max(jumps) + 1, len(history)) if history[i][:3] == ["iptables", "-w", "-C"]
    )
    netns = _first(history, lambda a: a[:3] == ["ip", "netns", "add"])
    first_address = _first(history, lambda a: any(network.HOST_IP in x or network.NODE_IP in x for x in a))
    assert route < rejects < min(jumps) <= max(jumps) < verified < netns < first_address


def test_no_masquerade_and_no_private_ranges(tmp_path):
    conf = network.write_cni_config(tmp_path / "net.d", tmp_path / "ipam").read_text()
    assert '"ipMasq": false' in conf
    for value in (network.POD_CIDR, network.CLUSTER_CIDR, network.SERVICE_RANGE, network.DNS_SERVICE_IP):
        assert value.startswith(("198.18.", "198.19.")), value


def test_incomplete_guard_stops_the_start():
    class BrokenRunner(Runner):
        def ok(self, *argv: str) -> bool:  # every iptables check fails: rules "missing"
            self.history.append(list(argv))
            return argv[:3] != ("iptables", "-w", "-C")

    runner = BrokenRunner(dry_run=True)  # and `route show` prints nothing: no unreachable route
    with pytest.raises(NodeError, match="egress guard is incomplete"):
        NodeNetwork(runner).start()
    assert not any(a[:3] == ["ip", "netns", "add"] for a in runner.history)


@pytest.mark.host_commands("ip", "iptables", root=True)
def test_live_guard_blocks_the_range_and_is_removed():
    # Hold the node lock: removing the guard under a running node would take its egress guard away.
    lock = FileLock(str(state_dir() / "node.lock"))
    state_dir().mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pytest.skip("a local node runs on this machine (its lock is held)")
    net = NodeNetwork()
    try:
        if net.exists():
            pytest.skip("a local node's network namespace exists on this machine")
        _check_live_guard(net)
    finally:
        lock.release()


def _check_live_guard(net: NodeNetwork) -> None:
    net.install_guard()
    try:
        assert net.guard_problems() == []
        with socket.socket() as sock:
            sock.settimeout(2)
            code = sock.connect_ex((network.DNS_SERVICE_IP, 53))
        assert code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM), code
    finally:
        net.remove_guard()
    assert net.guard_problems() != []
