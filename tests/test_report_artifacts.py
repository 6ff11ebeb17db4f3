"""Failure artifacts without a cluster: log tails, token reduction and the bundle.

The deployment here is a stand-in with a ``logs()`` method (the one thing :func:`collect` asks of a
process-mode deployment); pod mode (describe, events) runs against real pods in the node tests'
runs. The real-run test (tests/test_report_real_run.py) checks the artifacts of a real failure.
"""

from __future__ import annotations

import base64
import datetime as dt
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


def _audit_event(at: str, reviewer: str, token: str, stage: str = "ResponseComplete") -> str:
    """One line of kube-apiserver's audit log for a TokenReview, as REVIEW_AUDIT_POLICY writes it."""
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "RequestResponse",
            "stage": stage,
            "verb": "create",
            "requestURI": "/apis/authentication.k8s.io/v1/tokenreviews",
            "user": {"username": reviewer},
            "responseStatus": {"code": 201},
            "requestObject": {"spec": {"token": token, "audiences": ["secret-store"]}},
            "responseObject": {
                "spec": {"token": token, "audiences": ["secret-store"]},
                "status": {
                    "authenticated": True,
                    "user": {"username": "system:serviceaccount:a:b"},
                    "audiences": ["secret-store"],
                },
            },
            "requestReceivedTimestamp": at,
        }
    )


def test_the_review_transcript_is_the_apiservers_reviews_since_the_check_began(tmp_path: Path):
    callee = "system:serviceaccount:store:secret-store"
    log = tmp_path / "tokenreviews.jsonl"
    log.write_text(
        "\n".join(
            [
                _audit_event("2026-12-04T10:00:00.000000Z", callee, _token("before")),
                _audit_event("2026-12-04T10:00:05.000000Z", callee, _token("ignored"), stage="Panic"),
                _audit_event("2026-12-04T10:00:06.500000Z", callee, _token("jti-2")),
                _audit_event("2026-12-04T10:00:07.000000Z", "admin", "bootstrap.opaque-secret"),
                "not json",
            ]
        )
        + "\n"
    )
    since = dt.datetime(2026, 12, 4, 10, 0, 6, tzinfo=dt.UTC).timestamp()
    transcript = artifacts.review_transcript(log, since, {callee: "callee"})
    assert transcript is not None
    reviews = transcript["reviews"]
    assert [r["reviewer"] for r in reviews] == ["callee", "other"]
    assert reviews[0]["token"] == {"jti": "jti-2", "sub": "system:serviceaccount:a:b"}
    assert reviews[0]["authenticated"] is True
    assert reviews[0]["user"] == "system:serviceaccount:a:b"
    # An opaque value may be a credential too: only its length is kept.
    assert reviews[1]["token"] == {"not_a_jwt": True, "length": len("bootstrap.opaque-secret")}
    assert "opaque-secret" not in json.dumps(transcript)
    assert find_tokens(json.dumps(transcript)) == []
    files = artifacts.collect(_Deployment({}), None, False, review_log=log, since=since)
    # Without the deployment's roles (this stand-in has none) only the suite's own user is named.
    collected = json.loads(files["reviews.json"])["reviews"]
    assert [r["token"] for r in collected] == [r["token"] for r in reviews]
    assert [r["reviewer"] for r in collected] == ["other", "other"]
    files = artifacts.collect(
        _Deployment({}), None, False, review_log=log, since=since, suite_username="admin"
    )
    assert [r["reviewer"] for r in json.loads(files["reviews.json"])["reviews"]] == ["other", "suite"]
    assert artifacts.review_transcript(tmp_path / "missing.jsonl", since, {}) is None
