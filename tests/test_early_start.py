"""``--k8s-start-early``: the local cluster boots while pytest imports, is the one the tests get,
and leaves nothing behind, whether a test took it, none did, or pytest was killed meanwhile.

The inner runs are plain subprocesses (they use the kubernetes client); the early cluster's folder
is ``<tmp>/k8s-sa-<pid of the inner pytest>-...``, so its processes are found by that name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from leftovers import processes_mentioning

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.plugin.early import why_not
from pytest_k8s_sa.providers.settings import Settings

# --- when a run starts early (no cluster) ----------------------------------------------------------


def known_args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**values)


def test_a_plain_local_run_starts_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert why_not(known_args(numprocesses=None), Settings()) is None
    assert why_not(known_args(numprocesses=0), Settings()) is None  # -n 0: no xdist


@pytest.mark.parametrize(
    ("settings", "args", "reason"),
    [
        (Settings(provider="kubeconfig"), {}, "kubeconfig provider"),
        (Settings(provider="local-node"), {}, "local-node provider"),
        (Settings(keep_cluster=True), {}, "--keep-cluster"),
        (Settings(), {"numprocesses": 2}, "xdist"),
        (Settings(), {"numprocesses": "auto"}, "xdist"),
        (Settings(), {"collectonly": True}, "--collectonly runs no test"),
        (Settings(), {"help": True}, "--help"),
        (Settings(), {"showfixtures": True}, "--showfixtures"),
    ],
)
def test_runs_that_do_not_start_early_say_why(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, args: dict[str, object], reason: str
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert reason in (why_not(known_args(**args), settings) or "")


def test_an_xdist_worker_does_not_start_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert "xdist" in (why_not(known_args(), Settings()) or "")


# --- real runs -----------------------------------------------------------------------------------

TAKES_THE_EARLY_CLUSTER = """
from pytest_k8s_sa.plugin.early import EARLY_KEY

def test_gets_the_early_cluster(request, k8s_cluster):
    assert k8s_cluster.server_version
    assert request.config.stash[EARLY_KEY].taken
"""
NEEDS_NO_CLUSTER = """
from pytest_k8s_sa.plugin.early import EARLY_KEY

def test_needs_no_cluster(request):
    assert not request.config.stash[EARLY_KEY].taken
"""
BLOCKS_WITH_THE_CLUSTER = """
from pytest_k8s_sa.base.waiting import wait_until

def test_blocks(k8s_cluster):
    wait_until(lambda: False, 600, "blocking until the outer test kills us")
"""


def early_dirs(pid: int) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"k8s-sa-{pid}-*"))


def inner(pytester: pytest.Pytester, source: str, *args: str) -> subprocess.Popen[str]:
    pytester.makepyfile(source)
    # Not an xdist worker, even when this test runs in one (its PYTEST_XDIST_* variables would say so).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--k8s-start-early", *args],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_nothing_left(pid: int) -> None:
    wait_until(lambda: not processes_mentioning(f"k8s-sa-{pid}-"), 20, "early cluster processes left")
    assert early_dirs(pid) == [], "the early cluster's folder was left behind"


def test_the_tests_get_the_cluster_started_early(pytester: pytest.Pytester) -> None:
    proc = inner(pytester, TAKES_THE_EARLY_CLUSTER)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert_nothing_left(proc.pid)


def test_an_early_cluster_no_test_takes_is_stopped(pytester: pytest.Pytester) -> None:
    proc = inner(pytester, NEEDS_NO_CLUSTER)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert_nothing_left(proc.pid)


def test_collect_only_starts_nothing(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from pytest_k8s_sa.plugin.early import EARLY_KEY\n"
        "def pytest_collection_finish(session):\n"
        "    print('early start:', EARLY_KEY in session.config.stash)\n"
    )
    proc = inner(pytester, TAKES_THE_EARLY_CLUSTER, "--collect-only", "-s")
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "early start: False" in output


def test_kill_9_while_a_test_holds_the_early_cluster_leaves_nothing(pytester: pytest.Pytester) -> None:
    """The components die with the thread that started them: the early start's, alive until the
    cluster is destroyed, and gone with the process at kill -9."""
    proc = inner(pytester, BLOCKS_WITH_THE_CLUSTER)
    try:
        wait_until(
            lambda: len(processes_mentioning(f"k8s-sa-{proc.pid}-")) >= 3,
            120,
            "the inner run never started its control plane",
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    wait_until(lambda: not processes_mentioning(f"k8s-sa-{proc.pid}-"), 20, "components outlived kill -9")
    for folder in early_dirs(proc.pid):  # nobody removes a killed run's folder: this test does
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("module", ["pytest_k8s_sa.plugin.entry", "pytest_k8s_sa.plugin.hooks"])
def test_the_plugin_named_by_hand_with_autoload_off(pytester: pytest.Pytester, module: str) -> None:
    """``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 pytest -p <module>``: either module brings the options and
    the fixtures (no cluster needed to see them)."""
    pytester.makepyfile("def test_fixtures_exist(k8s_names):\n    assert k8s_names\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", module, "--fixtures"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "k8s_cluster_serving" in proc.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", module, "--help"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "--k8s-start-early" in help_text
    assert help_text.count("--k8s-provider=") == 1
