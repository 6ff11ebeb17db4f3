"""Failure artifacts without a cluster: log tails, token reduction and the bundle.

The deployment here is a stand-in with a ``logs()`` method (the one thing :func:`collect` asks of a
process-mode deployment); pod mode (describe, events) runs against real pods in the node tests'
runs. The real-run test (tests/test_report_real_run.py) checks the artifacts of a real failure.
"""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path
from typing import Any

from pytest_k8s_sa.report import artifacts
from pytest_k8s_sa.report.redact import find_tokens


def _token(jti: str) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'jti': jti, 'sub': 'system:serviceaccount:a:b'})}.c2ln"


class _Deployment:
    def __init__(self, logs: dict[str, str]) -> None:
        self._logs = logs

    def logs(self) -> dict[str, str]:
        return self._logs


class _Broken:
    def logs(self) -> dict[str, str]:
        raise OSError("log file gone")


def test_log_tails_keep_the_end_and_reduce_tokens_to_claims(tmp_path: Path):
    lines = [f"line {i}" for i in range(500)] + [f"presented {_token('jti-1')}", f"again {_token('jti-1')}"]
    files = artifacts.collect(_Deployment({"secret-store": "\n".join(lines), "api/x": "ok"}), None, False)
    assert sorted(files) == ["logs/api_x.log", "logs/secret-store.log", "tokens.json"]
    tail = files["logs/secret-store.log"].splitlines()
    assert len(tail) == artifacts.LOG_TAIL_LINES
    assert tail[-1] == "again <token jti=jti-1, sub=system:serviceaccount:a:b>"
    assert json.loads(files["tokens.json"]) == [{"jti": "jti-1", "sub": "system:serviceaccount:a:b"}]
    folder = artifacts.write(
        tmp_path / "art", "SEC-001", files, {"id": "SEC-001", "evidence": {"t": _token("x")}}
    )
    assert find_tokens((folder / "check.json").read_text()) == []
    archive = artifacts.bundle(tmp_path / "r.tar.gz", [tmp_path / "art", tmp_path / "missing.json"])
    assert archive is not None
    with tarfile.open(archive) as packed:
        assert "art/SEC-001/logs/secret-store.log" in packed.getnames()


def test_nothing_to_collect_is_not_an_error(tmp_path: Path):
    assert artifacts.collect(None, None, False) == {}
    assert artifacts.collect(_Broken(), None, False) == {}
    assert artifacts.bundle(tmp_path / "r.tar.gz", [tmp_path / "missing"]) is None
