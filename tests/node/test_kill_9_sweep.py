"""kill -9 during a local-node run: the next start sweeps everything the dead run left.

A first pytest run (plain subprocess, ``--k8s-provider local-node``) starts the node and deploys the
manifests as real pods, then blocks; it is killed with SIGKILL, so nothing of its teardown runs.
Its containers, mounts, network namespace, veth, iptables rules and routes must still be there
(else this test checks nothing). A second run starts the node again; its conftest observes the
machine right after that start's sweep (:func:`pytest_k8s_sa.components.node.node.sweep`, before
anything new is created) with the same functions (``traces.py``), and every category must be empty
then. The second run must pass, and once it ends nothing of either run is left.

Linux and root only, and the node lock must be free: one local node per machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock, Timeout
from host_commands import LOCAL_NODE

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.components.node.host import missing_prerequisites
from pytest_k8s_sa.components.node.node import state_dir

from . import traces

TRACES_PY = Path(traces.__file__).resolve()
CATEGORIES = ("containers", "mounts", "netns", "links", "rules", "routes")

FIRST_RUN = """
import os, pathlib
from pytest_k8s_sa.deploy import deploy_manifests
from pytest_k8s_sa.base.waiting import wait_until

def test_up_then_block(k8s_cluster, k8s_names, tmp_path):
    with deploy_manifests(k8s_cluster, k8s_names, tmp_path) as deployment:
        assert deployment.caller.get("/").status_code == 200
        pathlib.Path(os.environ["K8S_SA_TEST_UP"]).write_text("up")
        wait_until(lambda: False, 1800, "blocking until the outer test kills this run")
"""

SECOND_RUN_CONFTEST = """
import importlib.util, json, os, pathlib
from pytest_k8s_sa.components.node import node

_spec = importlib.util.spec_from_file_location("traces", os.environ["K8S_SA_TRACES"])
traces = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(traces)
_sweep = node.sweep

def sweep_then_observe(runner=None):
    found = _sweep(runner)
    observed = {"found": found, "traces": traces.observe()}
    pathlib.Path(os.environ["K8S_SA_AFTER_SWEEP"]).write_text(json.dumps(observed))
    return found

node.sweep = sweep_then_observe  # LocalNode.start_network calls the module's sweep()
"""

SECOND_RUN = """
def test_next_start(k8s_cluster):
    assert k8s_cluster.capabilities.runs_pods
"""

pytestmark = pytest.mark.host_commands(*LOCAL_NODE, root=True)


def _node_lock() -> FileLock:
    state_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(str(state_dir() / "node.lock"))


def _skip_unless_node_free() -> None:
    problems = missing_prerequisites()
    if problems:
        pytest.skip("the local-node provider cannot run here: " + "; ".join(problems))
    lock = _node_lock()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pytest.skip("a local node runs on this machine (its lock is held); this test needs it to itself")
    lock.release()


def _pytest(folder: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--k8s-provider", "local-node", *args],
        cwd=folder,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our SIGKILL goes to pytest alone, as a crash would
    )


def _failure_lines(log: Path) -> str:
    """pytest's own error lines of an inner run, without the component logs attached to them (the
    kubelet's klog lines would otherwise push the error itself out of view)."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith(("E ", "FAILED", "ERROR")) and not re.match(r"E\s+[IWEF]\d{4} \d", line)
    ]
    return "\n".join(lines[:120])


def _skip_if_lock_lost(log: Path) -> None:
    output = log.read_text(errors="replace")
    if "another local node runs on this machine" in output:
        pytest.skip("another run took the node lock before this test's run could (one node per machine)")


def test_kill_9_then_next_start_sweeps_everything(tmp_path):
    _skip_unless_node_free()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["K8S_SA_TRACES"] = str(TRACES_PY)

    first = tmp_path / "first"
    first.mkdir()
    (first / "test_first.py").write_text(FIRST_RUN)
    up = tmp_path / "up"
    first_log = tmp_path / "first.log"
    proc = _pytest(first, {**env, "K8S_SA_TEST_UP": str(up)}, first_log, f"--basetemp={first / 'tmp'}")
    try:

        def started() -> bool:
            if proc.poll() is not None:
                _skip_if_lock_lost(first_log)
                pytest.fail(f"the first run ended before its pods ran:\n{_failure_lines(first_log)}")
            return bool(up.exists())

        # Cold, the node's components and images are built first (several minutes).
        wait_until(started, 1800, "the first run's node and pods did not come up")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    left = traces.observe()
    for category in CATEGORIES:
        assert left[category], f"kill -9 left no {category}, so their sweep is not tested: {left}"

    second = tmp_path / "second"
    second.mkdir()
    (second / "conftest.py").write_text(SECOND_RUN_CONFTEST)
    (second / "test_second.py").write_text(SECOND_RUN)
    after_sweep = tmp_path / "after-sweep.json"
    second_log = tmp_path / "second.log"
    next_run = _pytest(
        second, {**env, "K8S_SA_AFTER_SWEEP": str(after_sweep)}, second_log, f"--basetemp={second / 'tmp'}"
    )
    try:
        code = next_run.wait(timeout=1200)
    finally:
        if next_run.poll() is None:
            next_run.kill()
    _skip_if_lock_lost(second_log)
    assert code == 0, second_log.read_text()[-4000:]

    observed = json.loads(after_sweep.read_text())
    assert observed["found"], "the next start's sweep found nothing to remove"
    for category in CATEGORIES:
        assert observed["traces"][category] == [], (
            f"{category} of the killed run survived the next start's sweep: {observed['traces'][category]} "
            f"(left by the kill: {left[category]})"
        )

    # The second run ended normally: nothing of either run may remain (checked under the node lock,
    # so another run starting meanwhile cannot be mistaken for a leftover).
    lock = _node_lock()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return  # another run took the node at once; its node is not ours to judge
    try:
        final = traces.observe()
        assert {c: final[c] for c in CATEGORIES} == {c: [] for c in CATEGORIES}
    finally:
        lock.release()
