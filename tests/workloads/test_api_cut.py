"""The API cut as it runs in a pod: ``python -E -S -m k8s_sa_workloads.api_cut``, switched over HTTP.

Pod mode cuts a callee off its Kubernetes API with this program (see
``pytest_k8s_sa/deploy/apicut/pod_mode.py``); here it runs as the pod would run it (standard library
only, package ``k8s_sa_workloads`` under the cwd) in front of a loopback echo server that stands in
for the apiserver: bytes pass and are counted in ``forward``, ``down`` refuses connections and
``forward`` takes them again, a TLS-terminating mode without a certificate is refused (409), SIGTERM
stops it with exit 0.
"""

import base64
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import pytest_k8s_sa.workloads as workloads


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP server that echoes what it gets (the apiserver's stand-in: the cut only moves bytes)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[:2]
    listener.close()


@pytest.fixture
def cut(tmp_path: Path, echo: tuple[str, int]) -> Iterator[dict[str, Any]]:
    package = tmp_path / "app" / "k8s_sa_workloads"
    package.mkdir(parents=True)
    for path in Path(workloads.__file__).parent.glob("*.py"):
        shutil.copy(path, package / path.name)
    proc = subprocess.Popen(
        [sys.executable, "-E", "-S", "-m", "k8s_sa_workloads.api_cut"],
        cwd=tmp_path / "app",
        env={
            "PATH": os.environ.get("PATH", ""),
            "UPSTREAM": f"{echo[0]}:{echo[1]}",
            "CUT_LISTEN_ADDR": "127.0.0.1:0",
            "LISTEN_ADDR": "127.0.0.1:0",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    events: dict[str, dict[str, Any]] = {}
    while "listening" not in events:
        record = json.loads(lines.get(timeout=20))  # every stderr line is JSON
        events[record["event"]] = record
    host, _, port = events["starting"]["cut"].rpartition(":")
    yield {"proc": proc, "control": f"http://{events['listening']['addr']}", "cut": (host, int(port))}
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _through(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def test_forward_counts_then_down_refuses_then_forward_again(cut: dict[str, Any]) -> None:
    control = cut["control"]
    assert requests.get(control + "/state", timeout=5).json()["forwarded_bytes"] == 0
    assert _through(cut["cut"], b"hello") == b"hello"
    state = requests.get(control + "/state", timeout=5).json()
    assert state["forwarded_bytes"] == 5
    assert state["mode"] == "forward"
    assert sum(state["peers"].values()) == 1

    assert requests.post(control + "/mode/down", timeout=5).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        _through(cut["cut"], b"x")
    assert requests.post(control + "/mode/forward", timeout=5).status_code == 200
    assert _through(cut["cut"], b"again") == b"again"


def test_tls_modes_need_a_certificate(cut: dict[str, Any]) -> None:
    control = cut["control"]
    assert "http" not in requests.get(control + "/state", timeout=5).json()["modes"]
    canned = base64.urlsafe_b64encode(b"HTTP/1.1 200 OK\r\n\r\n").decode()
    answer = requests.post(f"{control}/mode/http/{canned}", timeout=5)
    assert answer.status_code == 409
    assert requests.post(control + "/mode/nonsense", timeout=5).status_code == 409
    assert requests.get(control + "/state", timeout=5).json()["mode"] == "forward"


def test_sigterm_stops_it(cut: dict[str, Any]) -> None:
    # An answer means it serves, which it does only after installing its signal handlers (the
    # "listening" line comes just before; a SIGTERM in between would kill it with the default action).
    assert requests.get(cut["control"] + "/healthz", timeout=5).status_code == 200
    cut["proc"].send_signal(signal.SIGTERM)
    assert cut["proc"].wait(timeout=20) == 0


def test_upstream_is_required(tmp_path: Path) -> None:
    package = tmp_path / "k8s_sa_workloads"
    shutil.copytree(Path(workloads.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-E", "-S", "-m", "k8s_sa_workloads.api_cut"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "UPSTREAM must be host:port" in result.stderr
    assert "Traceback" not in result.stderr
