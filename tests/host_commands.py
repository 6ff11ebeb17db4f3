"""What a test needs of the host (commands, CNI plugins, root), and the one skip message for it.

Tests that run host commands say so with ``@pytest.mark.host_commands("iptables", "ip", root=True)``
(``tests/conftest.py`` turns the marker into a skip). On a machine without the Debian packages the
test skips naming the missing commands and the ``apt-get install -y ...`` line that adds them, instead
of failing with "No such file or directory" deep inside a helper; ``.ci/run`` proves it by running
the host-touching tests once with these commands hidden from ``PATH``, before it installs them.
"""

from __future__ import annotations

import os
import shutil
import sys

from pytest_k8s_sa.components.node.host import CNI_BIN_DIR

PACKAGES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
    "docker": "docker.io",
    "dockerd": "docker.io",
    "cni": "containernetworking-plugins",
    "chromium": "chromium",
}
"""Command -> the Debian package that provides it. ``cni`` stands for the CNI plugins, which are
files in :data:`~pytest_k8s_sa.components.node.host.CNI_BIN_DIR`, not commands on ``PATH``."""

CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")

LOCAL_NODE = ("ip", "nsenter", "mount", "umount", "iptables", "conntrack", "runc", "mmdebstrap", "cni")
"""Everything the local-node provider runs on the host (with root)."""


def _present(command: str) -> bool:
    if command == "cni":
        return all((CNI_BIN_DIR / plugin).is_file() for plugin in CNI_PLUGINS)
    return shutil.which(command) is not None


def host_problem(commands: tuple[str, ...], root: bool = False) -> str | None:
    """Why a test needing ``commands`` (and root, if ``root``) cannot run here; ``None`` if it can."""
    unknown = [c for c in commands if c not in PACKAGES]
    if unknown:
        raise ValueError(f"host_commands: no Debian package known for {unknown}; add it to PACKAGES")
    if sys.platform != "linux":
        return f"needs Linux for {', '.join(commands) or 'root'} (this is {sys.platform})"
    reasons = []
    if root and os.geteuid() != 0:
        reasons.append("needs root")
    missing = [c for c in commands if not _present(c)]
    if missing:
        named = [f"CNI plugins in {CNI_BIN_DIR}" if c == "cni" else c for c in missing]
        packages = " ".join(dict.fromkeys(PACKAGES[c] for c in missing))
        reasons.append(f"missing host commands {', '.join(named)}: `apt-get install -y {packages}`")
    return "; ".join(reasons) or None
