"""A node that could not take the machine-wide lock must not tear down the node that holds it.

Found when two runs shared a machine: the second run's failed start called its own teardown, which
read the first node's state file and removed its guard, namespace and container processes. The
test holds the lock in a separate process (as a concurrent run would), lets a second node fail to
start, and checks that it ran no host command and left the holder's state file in place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_k8s_sa.components.node import node as node_module
from pytest_k8s_sa.components.node.host import NodeError, Runner
from pytest_k8s_sa.components.node.node import LocalNode, state_dir

_HOLD = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire(timeout=10)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return state_dir()


def test_a_node_without_the_lock_tears_down_nothing(
    isolated_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweepers act on the machine (cgroups, shims, mounts, the network): replaced by recorders so
    # that a regression fails this test instead of tearing down a node that really runs here.
    swept: list[str] = []
    for name in ("_stop_leftovers", "_stop_network", "sweep"):
        monkeypatch.setattr(node_module, name, lambda *a, _n=name, **k: swept.append(_n))
    isolated_cache.mkdir(parents=True)
    holder_state = isolated_cache / "state.json"
    holder_state.write_text('{"workdir": "/somewhere/else"}')
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(isolated_cache / "node.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        runner = Runner(dry_run=True)
        binaries = {name: tmp_path / name for name in ("containerd", "ctr", "kubelet", "kube-proxy")}
        node = LocalNode(tmp_path / "node", binaries, runner=runner)  # type: ignore[arg-type]
        with pytest.raises(NodeError, match="another local node runs"):
            node.start_network()
        node.stop_components()
        node.stop_network()
        assert runner.history == []
        assert swept == []
        assert holder_state.read_text() == '{"workdir": "/somewhere/else"}'
    finally:
        holder.communicate(input="", timeout=10)


def test_a_provider_without_the_lock_keeps_the_shared_work_folder(
    isolated_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's teardown after a lost lock race used to remove the shared work folder, where
    the lock holder's node keeps its PKI, logs and mounts."""
    from pytest_k8s_sa.providers.local_node import LocalNodeProvider

    for name in ("_stop_leftovers", "_stop_network", "sweep"):
        monkeypatch.setattr(node_module, name, lambda *a, **k: None)
    provider = LocalNodeProvider()
    marker = provider.workdir / "control-plane" / "holder-was-here"
    marker.parent.mkdir(parents=True)
    marker.write_text("x")
    binaries = {name: tmp_path / name for name in ("containerd", "ctr", "kubelet", "kube-proxy")}
    provider.node = LocalNode(provider.workdir / "node", binaries, runner=Runner(dry_run=True))  # type: ignore[arg-type]
    provider.destroy()
    assert marker.exists()


def test_a_node_waits_for_the_lock_as_long_as_it_was_told(isolated_cache: Path, tmp_path: Path) -> None:
    """``--k8s-node-wait``: while another run holds the lock the node waits, then says what to set."""
    isolated_cache.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(isolated_cache / "node.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    binaries = {name: tmp_path / name for name in ("containerd", "ctr", "kubelet", "kube-proxy")}
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        impatient = LocalNode(tmp_path / "a", binaries, runner=Runner(dry_run=True), lock_wait_seconds=0.2)  # type: ignore[arg-type]
        with pytest.raises(NodeError, match=r"waited 0.2 s .*--k8s-node-wait SECONDS"):
            impatient.start_network()
        patient = LocalNode(tmp_path / "b", binaries, runner=Runner(dry_run=True), lock_wait_seconds=120)  # type: ignore[arg-type]
        holder.communicate(input="", timeout=10)  # the other run ends; its lock goes with it
        lock = patient._take_node_lock()
        assert lock.is_locked
        lock.release()
    finally:
        if holder.poll() is None:
            holder.communicate(input="", timeout=10)
