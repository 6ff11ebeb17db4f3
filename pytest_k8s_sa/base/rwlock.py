"""A readers-writer lock between the processes of one run (pytest-xdist workers), with deadlines.

Under xdist every worker shares one local control plane. A test that rotates the signing key
restarts its kube-apiserver (seconds without an API) and changes which tokens verify, which would
fail whatever another worker does at that moment. So every test holds the lock *shared* for its
whole protocol (setup, call, teardown), and a test that rotates holds it *exclusive*: it runs alone.

``flock`` gives shared and exclusive locks; a second ``gate`` file keeps a waiting writer from being
starved by readers that keep overlapping: a writer takes the gate first, and a reader passes the gate
(takes and drops it) before it takes its shared lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .paths import cache_root
from .waiting import WaitTimeout, wait_until


def run_lock_path(run_id: str) -> Path:
    """The lock file of the run ``run_id`` (the same in every xdist worker of that run)."""
    return cache_root() / "locks" / f"run-{run_id}.lock"


class LockTimeout(WaitTimeout):
    """The lock was not granted within the deadline."""


def _take(fd: int, mode: int, timeout: float, what: str) -> None:
    def granted() -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        wait_until(granted, timeout, what, max_interval=0.2)
    except WaitTimeout as exc:
        raise LockTimeout(str(exc)) from None


class RunLock:
    """The lock files ``<path>`` and ``<path>.gate``; create them on first use."""

    def __init__(self, path: Path, timeout: float = 1800.0) -> None:
        self.path = path
        self.gate = path.with_name(path.name + ".gate")
        self.timeout = timeout

    def _open(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        gate, lock = self._open(self.gate), self._open(self.path)
        try:
            _take(gate, fcntl.LOCK_SH, self.timeout, f"a rotating test holds {self.gate}")
            try:
                _take(lock, fcntl.LOCK_SH, self.timeout, f"{self.path} stays locked exclusively")
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            yield
        finally:
            os.close(lock)  # closing drops the flock
            os.close(gate)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        gate, lock = self._open(self.gate), self._open(self.path)
        try:
            _take(gate, fcntl.LOCK_EX, self.timeout, f"another test that rotates holds {self.gate}")
            _take(lock, fcntl.LOCK_EX, self.timeout, f"other tests of the run still hold {self.path}")
            yield
        finally:
            os.close(lock)
            os.close(gate)
