"""Start, health-check and stop long-running processes, and never leave one behind.

Modelled on mirakuru's executors: every process starts in a process group of its own, its output
goes to a log file (attached to the pytest report when a test fails), and stopping it signals the
whole group, SIGTERM first, SIGKILL after a grace period.

Three layers make sure nothing outlives the run:

1. :meth:`Process.stop` from fixture finalizers and signal handlers (Ctrl-C, SIGTERM).
2. ``PR_SET_PDEATHSIG`` (Linux): a child started with ``die_with_parent=True`` gets SIGKILL when the
   thread that started it dies, which covers ``kill -9`` of pytest.
3. A registry of running processes under the cache directory: each record names its owner (the
   pytest process, or the xdist controller for workers). :func:`sweep_orphans` runs before each
   start and kills the groups of any owner that is gone. It checks the process start time as well,
   so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import K8sSAError
from .paths import registry_dir
from .waiting import WaitTimeout, wait_until

_PR_SET_PDEATHSIG = 1


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


HEALTH_POLL_SECONDS = 0.1
"""The longest pause between two health probes of a starting process: probes are loopback requests,
and every tenth of a second a component is ready before it is seen so lengthens every start (the
control plane's four waits and each workload's come before the first check)."""


class ProcessError(K8sSAError):
    """A managed process failed to start or to become healthy."""


@dataclass
class Process:
    """One managed process: argv, environment, log file and health check.

    ``health`` is called until it returns True (or the deadline passes); it should be cheap and
    must not raise for "not yet".
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    health: Callable[[], bool] | None = None
    owner_pid: int | None = None
    die_with_parent: bool = True

    def __post_init__(self) -> None:
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = 60.0, *, wait: bool = True) -> None:
        """Start the process and wait until its health check passes (``wait=False``: leave that to
        :meth:`wait_healthy`).

        On failure the process is stopped and the error quotes the tail of its log.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = dict(os.environ if self.env is None else self.env)
        self._popen = subprocess.Popen(
            list(self.argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent and sys.platform == "linux" else None,
        )
        _register(self)
        if wait:
            self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until the health check passes (none: at once); on failure stop it and raise."""
        if self.health is None:
            return
        try:
            self.wait_for(self.health, timeout, what="healthy")
        except ProcessError:
            self.stop()
            raise

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``condition()`` is true; fail at once if the process exits meanwhile."""

        def check() -> bool:
            if not self.running():
                code = self._popen.returncode if self._popen else "?"
                raise ProcessError(
                    f"{self.name} exited with code {code} before it was {what}.\n{self.log_tail()}"
                )
            try:
                return condition()
            except Exception:
                return False

        try:
            wait_until(check, timeout, f"{self.name} was not {what}", max_interval=HEALTH_POLL_SECONDS)
        except WaitTimeout as exc:
            raise ProcessError(f"{exc}.\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        return f"last lines of {self.log_path}:\n" + "\n".join("  " + line for line in text[-lines:])

    def terminate(self) -> None:
        """SIGTERM the process group without waiting (:func:`stop_together`); :meth:`stop` still
        waits, kills what is left and reaps."""
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, signal.SIGTERM)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds, reap, close the log."""
        popen = self._popen
        if popen is not None:
            kill_group(popen.pid, grace, wait=popen.wait)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
            _unregister(self)
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_together(processes: Sequence[Process], grace: float = 10.0) -> None:
    """Stop ``processes`` at once, in the order given: SIGTERM to every group first, then each is
    waited for until one shared deadline ``grace`` seconds away and killed if still there.

    Why: stopped one after another, each costs its own shutdown time (a workload's ~50 ms, a
    control-plane component's grace), and nothing at the end of a run needs one to outlive another.
    """
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.stop(grace=max(0.0, deadline - time.monotonic()))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, grace: float, wait: Callable[[float], object] | None = None) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    leader_gone = False
    if wait is not None:  # our own child: reap it, then give the rest of its group a moment
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(grace)
            leader_gone = True
    if wait is None or leader_gone:
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: not _group_alive(pgid), grace if wait is None else 1.0, "group exit")
    # A leader still running after its grace gets SIGKILL now, not another second of waiting.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- the registry of running processes -------------------------------------------------------


def _record_path(pid: int) -> Path:
    return registry_dir() / f"{pid}.json"


def _register(proc: Process) -> None:
    assert proc.pid is not None
    owner = proc.owner_pid or os.getpid()
    record = {
        "pid": proc.pid,
        "start_time": process_start_time(proc.pid),
        "name": proc.name,
        "argv0": str(proc.argv[0]),
        "owner_pid": owner,
        "owner_start_time": process_start_time(owner),
    }
    path = _record_path(proc.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _unregister(proc: Process) -> None:
    if proc.pid is not None:
        forget(proc.pid)


def forget(pid: int) -> None:
    """Drop the registry record of ``pid`` (after it was stopped by someone other than its starter)."""
    _record_path(pid).unlink(missing_ok=True)


def sweep_orphans() -> list[str]:
    """Kill the process groups left by runs whose owner is gone; return what was killed."""
    killed: list[str] = []
    directory = registry_dir()
    if not directory.is_dir():
        return killed
    for path in directory.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if _alive(record["owner_pid"], record.get("owner_start_time")):
            continue
        if _alive(record["pid"], record.get("start_time")):
            kill_group(record["pid"], grace=5.0)
            killed.append(f"{record['name']} (pid {record['pid']})")
        path.unlink(missing_ok=True)
    return killed
