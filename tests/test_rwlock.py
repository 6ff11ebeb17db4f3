"""The run-wide readers-writer lock of xdist workers (no cluster): shared locks coexist, an
exclusive one waits for them (and fails at its deadline, saying what holds it), and a waiting writer
keeps new readers out."""

from __future__ import annotations

import pytest

from pytest_k8s_sa.base.rwlock import LockTimeout, RunLock


def test_shared_holders_coexist_and_exclude_a_writer(tmp_path):
    path = tmp_path / "run.lock"
    readers = RunLock(path).shared(), RunLock(path).shared()
    with readers[0], readers[1], pytest.raises(LockTimeout, match="still hold"):  # noqa: SIM117
        with RunLock(path, timeout=0.3).exclusive():
            pass
    with RunLock(path, timeout=1).exclusive():  # free again once the readers are gone
        pass


def test_a_writer_keeps_readers_out(tmp_path):
    path = tmp_path / "run.lock"
    with RunLock(path).exclusive(), pytest.raises(LockTimeout, match="rotating test"):  # noqa: SIM117
        with RunLock(path, timeout=0.3).shared():
            pass
    with RunLock(path, timeout=1).shared():
        pass
