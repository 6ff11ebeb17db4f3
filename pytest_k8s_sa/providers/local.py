"""The default provider: an embedded control plane on loopback, no Docker, no kubelet.

Shared by pytest-xdist workers: the first worker to need it starts it under a file lock in the
run's shared base temp directory and writes ``state.json`` there; the others attach. Because the
cluster must outlive the worker that started it, its processes are owned by the xdist controller,
which stops them at the end of the run (see :func:`stop_shared`). Without xdist the pytest
process owns them and they die with it even on ``kill -9``.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock

from ..base.errors import K8sSAError
from ..base.process import forget, kill_group, process_start_time
from ..base.waiting import WaitTimeout, wait_until
from ..components.binaries import DEFAULT_K8S_VERSION, find_binaries
from ..components.controlplane import (
    DEFAULT_SERVICE_ACCOUNT,
    ControlPlane,
    recorded_get,
    restart_recorded_apiserver,
)
from ..components.signingkeys import SigningKeys
from .base import Capabilities, ClusterInfo
from .keys import ApiServerKeyControl

STATE_DIR = "k8s-sa-local"
READY_PATHS = ("/readyz", DEFAULT_SERVICE_ACCOUNT)
"""What :meth:`~..components.controlplane.ControlPlane.wait_ready` waits for, asked over HTTP."""
START_TIMEOUT = 90.0
"""Seconds the control plane has to get ready (about 3 on an idle machine)."""
RESTART_TIMEOUT = 90.0
"""Seconds a restarted kube-apiserver has to answer ``/readyz`` (a few on an idle machine)."""


def _capabilities() -> Capabilities:
    return Capabilities(holds_signing_key=True, runs_pods=False, controller_manager=True, owns_cluster=True)


class LocalProvider:
    """Start (or attach to) the embedded control plane under ``shared_dir``."""

    name = "local"

    def __init__(
        self,
        shared_dir: Path,
        *,
        version: str = DEFAULT_K8S_VERSION,
        bin_dir: str | None = None,
        owner_pid: int | None = None,
        keep: bool = False,
        shared: bool = False,
        owns_dir: bool = False,
    ) -> None:
        """``shared``: an xdist worker; the cluster belongs to the run and the controller stops it.
        ``owns_dir``: ``shared_dir`` was made for this provider alone, so :meth:`destroy` removes it
        too (unless ``keep``)."""
        self.shared_dir = shared_dir
        self.owns_dir = owns_dir
        self.launched = threading.Event()
        """Set once this provider's kube-apiserver is spawned (see ``ControlPlane.launched``), or its
        start ended without one; may be replaced by another event before :meth:`create_serving`."""
        self.shared = shared
        self.workdir = shared_dir / STATE_DIR
        self.version = version
        self.bin_dir = bin_dir
        self.owner_pid = owner_pid
        self.keep = keep
        self.control_plane: ControlPlane | None = None

    @property
    def _state_path(self) -> Path:
        return self.workdir / "state.json"

    def create(self) -> ClusterInfo:
        info = self.create_serving()
        assert info.wait_ready is not None
        try:
            info.wait_ready(START_TIMEOUT)
        except BaseException:
            self.destroy()
            raise
        info.wait_ready = None
        return info

    def create_serving(self) -> ClusterInfo:
        """:meth:`create`, returned as soon as the apiserver serves the admin (see
        :class:`~.base.ServingStart`); ``wait_ready`` of the result waits for the default roles."""
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._lock_path)):
            state = self._read_live_state()
            if state is None:
                state = self._start()
        return ClusterInfo(
            provider=self.name,
            kubeconfig=Path(state["kubeconfig"]),
            capabilities=_capabilities(),
            issuer=state["issuer"],
            api_audiences=state["api_audiences"],
            signing_key=Path(state["signing_key"]),
            log_paths={k: Path(v) for k, v in state["logs"].items()},
            key_control=self._key_control(state),
            review_log=Path(state["review_log"]) if state.get("review_log") else None,
            wait_ready=self._wait_ready(state),
        )

    def _wait_ready(self, state: dict[str, Any]) -> Callable[[float], None]:
        """Through the ``ControlPlane`` this process started (a component dying fails it at once),
        else (an xdist worker that attached) over HTTP with the admin's certificate."""
        if self.control_plane is not None:
            return self.control_plane.wait_ready
        record = state["apiserver"]

        def ready() -> bool:
            return all(recorded_get(record, path).status_code == 200 for path in READY_PATHS)

        def wait(timeout: float) -> None:
            try:
                wait_until(
                    ready,
                    timeout,
                    "the shared control plane did not get ready",
                    max_interval=0.1,
                    ignore=(requests.RequestException, OSError),
                )
            except WaitTimeout as exc:
                raise K8sSAError(f"{exc}; its logs: {self.workdir / 'logs'}") from None

        return wait

    def _key_control(self, state: dict[str, Any]) -> ApiServerKeyControl | None:
        if "apiserver" not in state or "pki" not in state:
            return None  # a cluster started by an older version of this module: not rotatable
        certs = Path(state["pki"])
        keys = SigningKeys(certs / "sa.key", certs / "sa.crt", certs / "sa-legacy.crt")
        return ApiServerKeyControl(keys, self._restart_apiserver, self._lock_path)

    @property
    def _lock_path(self) -> Path:
        return self.shared_dir / f"{STATE_DIR}.lock"

    def _restart_apiserver(self) -> None:
        """Restart kube-apiserver (the caller holds the state lock, so nobody attaches meanwhile).

        Without xdist this process started it and restarts it through its ``ControlPlane``. Under
        xdist any worker may rotate, so the restart goes by the record in ``state.json`` (and writes
        the new process there, for :func:`stop_shared`): the new apiserver belongs to the controller.
        """
        state: dict[str, Any] = json.loads(self._state_path.read_text())
        index = next(i for i, r in enumerate(state["pids"]) if r.get("name") == "kube-apiserver")
        old = state["pids"][index]
        if self.control_plane is not None and not self.shared:
            self.control_plane.restart_apiserver(timeout=RESTART_TIMEOUT)
            pid = next(p.pid for p in self.control_plane.processes if p.name == "kube-apiserver")
        else:
            proc = restart_recorded_apiserver(
                state["apiserver"],
                old["pid"],
                old["start_time"],
                owner_pid=self.owner_pid,
                timeout=RESTART_TIMEOUT,
            )
            pid = proc.pid
        assert pid is not None
        state["pids"][index] = {"name": "kube-apiserver", "pid": pid, "start_time": process_start_time(pid)}
        self._state_path.write_text(json.dumps(state, indent=2))

    def _start(self) -> dict[str, Any]:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        binaries = find_binaries(self.version, self.bin_dir)
        cp = ControlPlane(
            self.workdir,
            binaries,
            owner_pid=self.owner_pid,
            die_with_parent=not self.shared,
            launched=self.launched,
        )
        cp.start(START_TIMEOUT, ready=False)
        self.control_plane = cp
        state: dict[str, Any] = {
            "kubeconfig": str(cp.kubeconfig),
            "server": cp.server,
            "ca": str(cp.certs.ca),
            "issuer": cp.issuer,
            "api_audiences": cp.api_audiences,
            "signing_key": str(cp.certs.sa_signing_key),
            "logs": {k: str(v) for k, v in cp.log_paths.items()},
            "review_log": str(cp.review_log) if cp.review_log else None,
            "startup_seconds": cp.startup_seconds,
            "pids": [
                {"name": p.name, "pid": p.pid, "start_time": process_start_time(p.pid)}
                for p in cp.processes
                if p.pid
            ],
            "pki": str(cp.certs.directory),
            "apiserver": cp.apiserver_record(),
        }
        self._state_path.write_text(json.dumps(state, indent=2))
        return state

    def _read_live_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self._state_path.read_text())
            answer = requests.get(f"{state['server']}/livez", verify=str(state["ca"]), timeout=2)
        except (OSError, ValueError, KeyError, requests.RequestException):
            return None
        return state if answer.status_code in (200, 401, 403) else None

    def export_logs(self, destination: Path) -> list[Path]:
        destination.mkdir(parents=True, exist_ok=True)
        written = []
        for log in (self.workdir / "logs").glob("*.log"):
            written.append(Path(shutil.copy2(log, destination / log.name)))
        return written

    def destroy(self) -> None:
        if self.shared:
            return  # other workers may still use it; the xdist controller stops it (stop_shared)
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
            self._state_path.unlink(missing_ok=True)
        if not self.keep:
            shutil.rmtree(self.shared_dir if self.owns_dir else self.workdir, ignore_errors=True)


def stop_shared(shared_dir: Path, keep: bool = False) -> bool:
    """Stop a control plane recorded in ``shared_dir`` (the xdist controller calls this)."""
    state_path = shared_dir / STATE_DIR / "state.json"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return False
    for record in reversed(state.get("pids", [])):
        if process_start_time(record["pid"]) == record["start_time"]:
            kill_group(record["pid"], grace=10.0)
        forget(record["pid"])
    state_path.unlink(missing_ok=True)
    if not keep:
        shutil.rmtree(shared_dir / STATE_DIR, ignore_errors=True)
    return True
