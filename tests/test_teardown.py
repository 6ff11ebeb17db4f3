"""No process is ever left behind: normal end, failing test, SIGTERM, kill -9, xdist, `k8s-sa up`.

Each case runs a real pytest (or `k8s-sa up`) in a subprocess with its own --basetemp, which
starts the control plane and deploys the three workloads as processes, and then looks for any
process whose command line or environment mentions that folder: every control-plane component
has its data, certificate and log paths there, every workload its token paths.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from leftovers import processes_mentioning

from pytest_k8s_sa.base.process import Process, ProcessError, stop_together, sweep_orphans
from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.deploy.cleanup import Cleanups

USES_CLUSTER = """
from pytest_k8s_sa.deploy import deploy_processes
from pytest_k8s_sa.base.waiting import wait_until

def test_uses_cluster(k8s_cluster, k8s_names, k8s_namespace, tmp_path):
    with deploy_processes(k8s_cluster, k8s_names, tmp_path) as deployment:
        assert deployment.caller.get("/").status_code == 200
        {body}
"""
COMPONENTS = 6  # etcd, kube-apiserver, kube-controller-manager, secret store, API service, data store


def assert_nothing_left(basetemp: Path) -> None:
    wait_until(lambda: not processes_mentioning(str(basetemp)), 20, "processes left behind")


def run_inner(pytester: pytest.Pytester, body: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    pytester.makepyfile(USES_CLUSTER.format(body=body))
    basetemp = pytester.path / "basetemp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, basetemp


def wait_for_cluster(basetemp: Path) -> None:
    wait_until(
        lambda: len(processes_mentioning(str(basetemp))) >= COMPONENTS,
        120,
        "inner run never started its control plane and workloads",
    )


@pytest.mark.parametrize("body", ["pass", "assert False, 'failing on purpose'"], ids=["passing", "failing"])
def test_nothing_left_after_a_run(pytester, body):
    proc, basetemp = run_inner(pytester, body)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == (0 if body == "pass" else 1), output
    assert_nothing_left(basetemp)


BLOCK = "wait_until(lambda: False, 600, 'blocking until the outer test signals us')"


def signal_when_up(pytester: pytest.Pytester, signum: int, *args: str) -> tuple[int, Path]:
    """Start a blocking inner run, send it ``signum`` once its cluster and workloads are up."""
    proc, basetemp = run_inner(pytester, BLOCK, *args)
    try:
        wait_for_cluster(basetemp)
        proc.send_signal(signum)
        # A deadline for a hang, not a speed claim: teardown stops six processes, each with a grace
        # period, and .ci/run's bare-machine step runs this beside another worker's clusters.
        proc.communicate(timeout=180)
    finally:
        proc.kill()
    return proc.returncode, basetemp


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_nothing_left_after_interrupt(pytester, signum):
    returncode, basetemp = signal_when_up(pytester, signum)
    assert returncode != 0
    assert_nothing_left(basetemp)


def test_nothing_left_after_kill_9(pytester):
    _, basetemp = signal_when_up(pytester, signal.SIGKILL)
    assert_nothing_left(basetemp)


def test_kill_9_of_an_xdist_run_is_swept_by_the_next_run(pytester):
    """Under xdist the shared cluster cannot die with the worker that started it; after kill -9 of
    pytest it is an orphan, and the next run's sweep removes it before starting its own."""
    _, basetemp = signal_when_up(pytester, signal.SIGKILL, "-n", "2")
    orphans = processes_mentioning(str(basetemp))
    assert orphans, "expected the shared control plane to outlive a kill -9 (else this test checks nothing)"
    pytester.makepyfile(test_next="def test_next(k8s_cluster):\n    assert k8s_cluster.server_version\n")
    result = pytester.runpytest_subprocess(
        "test_next.py", "-p", "no:cacheprovider", f"--basetemp={pytester.path / 'next'}"
    )
    result.assert_outcomes(passed=1)
    assert_nothing_left(basetemp)


def test_xdist_workers_share_one_control_plane_and_it_stops(pytester, monkeypatch):
    out = pytester.path / "out"
    out.mkdir()
    monkeypatch.setenv("K8S_SA_TEST_OUT", str(out))
    pytester.makepyfile(
        """
        import os, pathlib, pytest

        @pytest.mark.parametrize("n", range(4))
        def test_server(k8s_cluster, k8s_namespace, n):
            line = f"{k8s_cluster.api_client.configuration.host} {k8s_namespace} {os.getpid()}"
            (pathlib.Path(os.environ["K8S_SA_TEST_OUT"]) / str(n)).write_text(line)
        """
    )
    basetemp = pytester.path / "basetemp"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--basetemp={basetemp}")
    result.assert_outcomes(passed=4)
    rows = [path.read_text().split() for path in out.iterdir()]
    assert len({server for server, _, _ in rows}) == 1, rows
    assert len({namespace for _, namespace, _ in rows}) == 4, rows
    assert len({pid for _, _, pid in rows}) == 2, "both workers should have run tests"
    assert_nothing_left(basetemp)


def test_k8s_sa_up_prints_ready_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kc"
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        ["k8s-sa", "up", "--kubeconfig", str(kubeconfig), "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"ready {kubeconfig}"
        assert kubeconfig.is_file()
        assert processes_mentioning(str(workdir))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert_nothing_left(workdir)


def sleeper(marker: str) -> str:
    """A shell word list for a child that idles and carries ``marker`` in its command line."""
    return f"{sys.executable} -c 'import signal; signal.pause()' {marker}"


def test_process_stop_kills_the_whole_group(tmp_path):
    marker = f"k8s-sa-group-{os.getpid()}"
    proc = Process("group", ["sh", "-c", f"{sleeper(marker)} & {sleeper(marker)}; wait"], tmp_path / "log")
    proc.start()
    wait_until(lambda: len(processes_mentioning(marker)) >= 3, 10, "shell and two children not started")
    proc.stop(grace=5)
    wait_until(lambda: not processes_mentioning(marker), 10, "group still alive")


SLOW_TO_STOP = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(*_):
    received = time.monotonic()
    time.sleep(0.3)  # its shutdown work
    out.write_text(f"{received} {time.monotonic()}")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path(sys.argv[1] + ".ready").touch()
signal.pause()
"""


def slow_to_stop(tmp_path: Path, name: str) -> tuple[Process, Path]:
    """A process that takes a while to shut down and writes when it got SIGTERM and when it ended."""
    out = tmp_path / name
    proc = Process(
        name,
        [sys.executable, "-c", SLOW_TO_STOP, str(out)],
        tmp_path / f"{name}.log",
        health=(tmp_path / f"{name}.ready").exists,
    )
    proc.start(timeout=30)
    return proc, out


def assert_stopped_together(outs: list[Path]) -> None:
    """Every process got SIGTERM before any of them had finished shutting down."""
    times = [tuple(map(float, out.read_text().split())) for out in outs]
    assert max(received for received, _ in times) < min(ended for _, ended in times), times


def test_stop_together_signals_every_process_before_waiting_for_one(tmp_path):
    started = [slow_to_stop(tmp_path, f"slow-{i}") for i in range(3)]
    stop_together([proc for proc, _ in started], grace=10)
    assert not any(proc.running() for proc, _ in started)
    assert_stopped_together([out for _, out in started])


def test_stop_together_kills_what_outlives_the_grace(tmp_path):
    marker = f"k8s-sa-stubborn-{os.getpid()}"
    stubborn = Process(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()",
            marker,
        ],
        tmp_path / "log",
    )
    stubborn.start()
    wait_until(lambda: bool(processes_mentioning(marker)), 10, "not started")
    stop_together([stubborn], grace=0.2)
    wait_until(lambda: not processes_mentioning(marker), 10, "a process ignoring SIGTERM outlived its grace")


def test_cleanups_stop_their_processes_together_and_in_turn(tmp_path):
    order: list[str] = []
    with Cleanups() as stack:
        for i in range(2):
            proc, _ = slow_to_stop(tmp_path, f"workload-{i}")
            stack.stop_on_exit(proc)
            stack.defer(order.append, f"after-{i}")
    assert_stopped_together([tmp_path / "workload-0", tmp_path / "workload-1"])
    assert order == ["after-1", "after-0"]


def test_a_process_that_dies_at_start_reports_its_log(tmp_path):
    proc = Process(
        "doomed", ["sh", "-c", "echo boom-marker >&2; exit 3"], tmp_path / "log", health=lambda: False
    )
    with pytest.raises(ProcessError, match="exited with code 3") as error:
        proc.start(timeout=10)
    assert "boom-marker" in str(error.value)


def test_sweep_kills_orphans_of_a_dead_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    marker = f"k8s-sa-orphan-{os.getpid()}"
    orphan = Process(
        "orphan",
        ["sh", "-c", f"{sleeper(marker)}; :"],
        tmp_path / "log",
        owner_pid=dead_owner.pid,
        die_with_parent=False,
    )
    orphan.start()
    wait_until(lambda: len(processes_mentioning(marker)) == 2, 10, "orphan not started")
    killed = sweep_orphans()
    assert killed == [f"orphan (pid {orphan.pid})"]
    wait_until(lambda: not processes_mentioning(marker), 10, "orphan survived the sweep")
    orphan.stop()


def test_sweep_spares_processes_whose_owner_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    marker = f"k8s-sa-owned-{os.getpid()}"
    owned = Process("owned", ["sh", "-c", f"{sleeper(marker)}; :"], tmp_path / "log")
    owned.start()
    try:
        wait_until(lambda: len(processes_mentioning(marker)) == 2, 10, "process not started")
        assert sweep_orphans() == []
        assert len(processes_mentioning(marker)) == 2
    finally:
        owned.stop()


def test_the_heap_is_frozen_at_exit_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin skips the interpreter's last collection (``gc.freeze`` at exit), registered once
    however many pytest runs the process holds (pytester runs configure the plugin again)."""
    import atexit
    import gc

    from pytest_k8s_sa.plugin import hooks

    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(hooks, "_EXIT_HOOKED", [])
    hooks._exit_without_a_final_collection()
    hooks._exit_without_a_final_collection()
    assert registered == [gc.freeze]
