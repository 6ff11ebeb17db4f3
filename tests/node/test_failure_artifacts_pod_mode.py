"""Failure artifacts of a check that fails with the SUT running as real pods (pod mode, local node).

Issue 18's artifacts are what explains a failure once the run and its cluster are gone. This runs
the one check ALLOW-001 (the allowed caller's name in another namespace) against a callee that
compares only the name (``tests/mutants/allow_list_name_only``, packed as the callee image by
``tests/node/sut_images.py``), so the check fails, and reads what the run left for it: the callee's
and the caller's log tails, each pod described with its events, the events of the workloads'
namespaces, and the review transcript, in which the apiserver's answer the callee acted on must be
found (the impostor's token authenticated as the impostor). Then the one ``.tar.gz`` of the report
folder, and every output, packed or not, and the terminal searched for JWTs. Needs root on Linux
(the local-node provider); one inner run of one check, in a plain subprocess.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from host_commands import LOCAL_NODE

from pytest_k8s_sa.report.redact import find_tokens

from .pod_runs import run_suite_on_node
from .sut_images import build

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.host_commands(*LOCAL_NODE, root=True),
]

MUTANT = "allow_list_name_only"
CHECK = "ALLOW-001"


def test_a_check_failed_in_pod_mode_leaves_logs_pods_events_and_the_review_transcript(tmp_path: Path) -> None:
    sut = build(tmp_path / "sut", MUTANT)
    out = tmp_path / "out"
    result = run_suite_on_node(
        sut,
        tmp_path,
        extra=[
            "--conformance-checks",
            CHECK,
            "--conformance-artifacts",
            str(out / "artifacts"),
            "--conformance-summary",
            str(out / "summary.md"),
            "--junitxml",
            str(out / "junit.xml"),
        ],
    )
    terminal = result.stdout + result.stderr
    shown = f"exit {result.returncode}\n{terminal[-6000:]}"
    assert result.returncode == 1, shown
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "pod"
    assert report["provider"] == "local-node"
    check = next(c for c in report["checks"] if c["id"] == CHECK)
    assert check["outcome"] == "failed", check
    impostor = check["evidence"]["presented_as"]
    folder = out / "artifacts" / CHECK
    files = {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}

    # The callee's and the caller's log tails, named by role; the callee's decision on the impostor.
    assert {"logs/callee.log", "logs/caller.log"} <= set(files), sorted(files)
    assert impostor in files["logs/callee.log"], files["logs/callee.log"]
    # Each workload pod described, with its events and token volume; the namespaces' events.
    pods = files["pods.txt"]
    for role in ("callee", "caller"):
        assert f"## {role} (" in pods, pods
    assert "phase Running" in pods, pods
    assert "Normal Started" in pods, pods
    assert "service-account token" in pods, pods
    assert " Started Pod/" in files["events.txt"], files["events.txt"]
    # The review transcript: the apiserver told the callee who the impostor is; it granted anyway.
    reviews = json.loads(files["reviews.json"])["reviews"]
    answered = [r for r in reviews if r["reviewer"] == "callee" and r["user"] == impostor]
    assert answered, json.dumps(reviews, indent=1)[:4000]
    # The suite's own review of the same token (valid for the audience: only the allow-list may refuse).
    jti = answered[-1]["token"]["jti"]
    assert any(r["reviewer"] == "suite" and r["token"]["jti"] == jti for r in reviews), reviews
    assert answered[-1]["authenticated"] is True
    assert answered[-1]["token"]["sub"] == impostor
    assert answered[-1]["token"]["jti"]

    # One .tar.gz of the report folder, with the artifacts in it.
    bundle = tmp_path / "report.tar.gz"
    with tarfile.open(bundle) as packed:
        names = packed.getnames()
        packed.extractall(tmp_path / "unpacked", filter="data")
    wanted = ("reviews.json", "pods.txt", "logs/callee.log")
    packed_artifacts = {f"artifacts/{CHECK}/{name}" for name in wanted}
    assert {"report.json", "summary.md", *packed_artifacts} <= set(names), names

    # No token anywhere: the outputs, what the bundle holds, and the terminal.
    outputs = {
        str(p.relative_to(tmp_path)): p.read_text(errors="replace")
        for p in [tmp_path / "report.json", *out.rglob("*"), *(tmp_path / "unpacked").rglob("*")]
        if p.is_file()
    }
    outputs["terminal"] = terminal
    leaks = {name: find_tokens(text) for name, text in outputs.items() if find_tokens(text)}
    assert not leaks, f"tokens in the outputs: {leaks}"
