"""The workloads as they run in a pod: a package ``k8s_sa_workloads``, standard library only, signals.

The processes run with ``python -E -S``: no site-packages and no PYTHONPATH, which is stricter than a
stock ``python:3.11`` image, so any third-party or ``pytest_k8s_sa`` import would fail here.
"""

import ast
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_k8s_sa.workloads as workloads

from ._support import DATA_STORE_SA, Pki, TokenReviewStub, make_token, request

SOURCE = Path(workloads.__file__).parent
MODULES = sorted(SOURCE.glob("*.py"))


def test_only_standard_library_and_relative_imports() -> None:
    assert {p.name for p in MODULES} == {
        "__init__.py",
        "envconfig.py",
        "httpclient.py",
        "apicreds.py",
        "httpserver.py",
        "entry.py",
        "secret_store.py",
        "api.py",
        "data_store.py",
        "tap.py",
        "api_cut.py",
    }
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {name}"


class Process:
    """A workload subprocess whose stderr JSON lines are collected by a reader thread."""

    def __init__(self, cwd: Path, module: str, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-E", "-S", "-m", f"k8s_sa_workloads.{module}"],
            cwd=cwd,
            env={"PATH": os.environ.get("PATH", ""), **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        stream = self.proc.stderr

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, event: str, timeout: float = 20) -> dict[str, Any]:
        while True:
            line = self.lines.get(timeout=timeout)
            record = json.loads(line)  # every stderr line must be JSON
            if record["event"] == event:
                return dict(record)

    def url(self) -> str:
        return f"http://{self.wait_for('listening')['addr']}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def pod_dir(tmp_path: Path) -> Path:
    """The ConfigMap layout: the module files as package ``k8s_sa_workloads`` under the cwd."""
    package = tmp_path / "app" / "k8s_sa_workloads"
    package.mkdir(parents=True)
    for path in MODULES:
        shutil.copy(path, package / path.name)
    return tmp_path / "app"


@pytest.fixture
def spawn(pod_dir: Path) -> Iterator[Callable[[str, dict[str, str]], Process]]:
    started: list[Process] = []

    def start(module: str, env: dict[str, str]) -> Process:
        process = Process(pod_dir, module, env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)


def spawn_store(
    spawn: Callable[[str, dict[str, str]], Process], stub: TokenReviewStub, pki: Pki, tmp_path: Path
) -> Process:
    """The secret store as in a pod, allowing ``api:api``, reviewing through ``stub``."""
    (tmp_path / "own").write_text("store-credential")
    return spawn(
        "secret_store",
        {
            "LISTEN_ADDR": "127.0.0.1:0",
            "ALLOWED_SERVICE_ACCOUNTS": "api:api",
            "K8S_API_URL": stub.url,
            "K8S_CA_FILE": str(pki.ca_file),
            "K8S_TOKEN_FILE": str(tmp_path / "own"),
        },
    )


def test_three_workloads_end_to_end_then_sigterm(
    spawn: Callable[[str, dict[str, str]], Process], stub: TokenReviewStub, pki: Pki, tmp_path: Path
) -> None:
    api_token, data_token = make_token(), make_token(sub=DATA_STORE_SA)
    stub.program(users={api_token: "system:serviceaccount:api:api", data_token: DATA_STORE_SA})
    (tmp_path / "api-token").write_text(api_token)
    (tmp_path / "data-store-token").write_text(data_token)
    store = spawn_store(spawn, stub, pki, tmp_path)
    store_url = store.url()
    callers = {
        name: spawn(
            name,
            {
                "LISTEN_ADDR": "127.0.0.1:0",
                "SECRET_STORE_URL": store_url,
                "TOKEN_PATH": str(tmp_path / token),
            },
        )
        for name, token in (("api", "api-token"), ("data_store", "data-store-token"))
    }
    api_url, data_url = callers["api"].url(), callers["data_store"].url()

    assert request(store_url, "/healthz").status == 200
    assert request(api_url).body == b"Hello from secret store. You have been authenticated"
    assert (request(data_url).status, request(data_url).body) == (403, b"permission denied")
    assert store.wait_for("decision")["decision"] == "allow"

    for process in (store, *callers.values()):
        assert process.stop() == 0
        assert process.wait_for("stopped")["event"] == "stopped"


def test_sigterm_right_after_listening_stops_cleanly(spawn: Callable[[str, dict[str, str]], Process]) -> None:
    """A supervisor that signals the moment it reads "listening" gets a clean stop (exit 0, "stopped"),
    because the line is logged only once the signal handlers are in place."""
    for _ in range(5):
        data_store = spawn(
            "data_store", {"LISTEN_ADDR": "127.0.0.1:0", "SECRET_STORE_URL": "http://127.0.0.1:9"}
        )
        data_store.wait_for("listening")
        assert data_store.stop() == 0
        assert data_store.wait_for("stopped")["event"] == "stopped"


@pytest.mark.parametrize("module", ["secret_store", "api", "data_store", "tap"])
def test_configuration_error_is_one_line_and_exit_2(pod_dir: Path, module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-E", "-S", "-m", f"k8s_sa_workloads.{module}"],
        cwd=pod_dir,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_token_tap_between_caller_and_store_as_in_a_pod(
    spawn: Callable[[str, dict[str, str]], Process], stub: TokenReviewStub, pki: Pki, tmp_path: Path
) -> None:
    """The pod mode's tap: the caller calls the store through it, the status port tells the jti."""
    token = make_token("tapped-jti")
    stub.program(users={token: "system:serviceaccount:api:api"})
    (tmp_path / "api-token").write_text(token)
    store = spawn_store(spawn, stub, pki, tmp_path)
    tap = spawn(
        "tap",
        {"LISTEN_ADDR": "127.0.0.1:0", "STATUS_ADDR": "127.0.0.1:0", "UPSTREAM_URL": store.url()},
    )
    relay_url = f"http://{tap.wait_for('relaying')['addr']}"
    status_url = tap.url()
    assert request(status_url).json == {"jti": None, "requests": 0}
    api = spawn(
        "api",
        {
            "LISTEN_ADDR": "127.0.0.1:0",
            "SECRET_STORE_URL": relay_url,
            "TOKEN_PATH": str(tmp_path / "api-token"),
        },
    )
    assert request(api.url()).status == 200
    assert request(status_url).json == {"jti": "tapped-jti", "requests": 1}
    relayed = tap.wait_for("relay")  # its log line names the jti, never the token
    assert (relayed["status"], relayed["jti"]) == (200, "tapped-jti")
    assert token not in json.dumps(relayed)
    for process in (api, tap, store):
        assert process.stop() == 0
