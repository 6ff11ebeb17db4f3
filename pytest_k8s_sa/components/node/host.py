"""Host prerequisites for the local node, and the one way this package runs host commands.

Every command is an argv list (never a shell). :class:`Runner` can be replaced in tests to record
the commands instead of running them, which is how the order "guard first" is tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...base.errors import K8sSAError

CNI_BIN_DIR = Path("/usr/lib/cni")
"""Where Debian's containernetworking-plugins installs bridge, host-local, loopback, portmap."""

APT_PACKAGES = "runc containernetworking-plugins iptables iproute2 util-linux mmdebstrap"


class NodeError(K8sSAError):
    """The local node cannot be started or stopped."""


class CommandError(NodeError):
    """A host command failed."""

    def __init__(self, argv: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"`{' '.join(argv)}` failed (exit {code}): {output.strip()[-2000:]}")
        self.argv = list(argv)
        self.code = code
        self.output = output


@dataclass
class Runner:
    """Runs host commands; ``dry_run`` records them only (for tests of the command order)."""

    dry_run: bool = False
    history: list[list[str]] = field(default_factory=list)

    def __call__(self, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
        self.history.append(list(argv))
        if self.dry_run:
            return ""
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and proc.returncode != 0:
            raise CommandError(argv, proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout

    def ok(self, *argv: str) -> bool:
        """True when the command exits 0 (output discarded); never raises for a non-zero exit."""
        self.history.append(list(argv))
        if self.dry_run:
            return True
        proc = subprocess.run(list(argv), capture_output=True, check=False, stdin=subprocess.DEVNULL)
        return proc.returncode == 0


_TOOLS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
}


def missing_prerequisites() -> list[str]:
    """What keeps the local node from running here, each with how to fix it; empty when all is well."""
    problems: list[str] = []
    if sys.platform != "linux":
        return [f"the local-node provider needs Linux (this is {sys.platform})"]
    if os.geteuid() != 0:
        problems.append("the local-node provider needs root (network namespaces, mounts, cgroups, iptables)")
    packages = sorted({pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None})
    if packages:
        missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
        problems.append(
            f"missing commands {', '.join(missing)}: `apt-get install -y {' '.join(packages)}` fixes it"
        )
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).is_file():
            problems.append(
                f"CNI plugin {CNI_BIN_DIR / plugin} is missing: "
                "`apt-get install -y containernetworking-plugins`"
            )
            break
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        problems.append("no cgroup hierarchy with the memory controller is mounted under /sys/fs/cgroup")
    if shutil.which("go") is None:
        problems.append("the Go toolchain (`go`, 1.26+) is needed to build the node components")
    return problems
