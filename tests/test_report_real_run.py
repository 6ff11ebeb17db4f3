"""Every output of a real run, for tokens: a mutant judged on the local provider, as a user runs it.

The run (``tests/mutants/no_review``: trusts the JWT payload without TokenReview) is the whole fast
profile in a plain subprocess (the kubernetes client does not survive pytester) with every writer on:
the JSON report, the Markdown summary, the HTML page and JUnit XML. Real tokens pass through the run
(the caller's, the intruder's, hostile ones derived from them, LOG-001 searching logs for them); none
may appear in any output. The report must validate against the shipped schema and name the failed
checks with their catalogue text.

``K8S_SA_RECORD_REPORTS=1`` also stores the report as test data (``tests/data/recorded/no_review.json``):
the browser test opens the HTML of that recorded report, and the README's Markdown example is
rendered from it (``K8S_SA_UPDATE_README=1 pytest tests/test_report_readme.py`` after recording).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pytest_k8s_sa.report import schema
from pytest_k8s_sa.report.redact import find_tokens

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "tests" / "data" / "recorded"
MUTANT = "no_review"
RECORD = os.environ.get("K8S_SA_RECORD_REPORTS", "") not in ("", "0")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("real-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "K8S_SA_", "GITHUB_"))}
    env["GITHUB_STEP_SUMMARY"] = str(out / "step-summary.md")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "suites",
        "--sut",
        f"tests/mutants/{MUTANT}/sut.yaml",
        "--k8s-provider",
        "local",
        "--conformance-profile",
        "fast",
        "--conformance-report",
        str(out / "report.json"),
        "--conformance-summary",
        str(out / "summary.md"),
        "--conformance-html",
        str(out / "report.html"),
        "--junitxml",
        str(out / "junit.xml"),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        "--basetemp",
        str(out / "basetemp"),
    ]
    proc = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert (out / "report.json").is_file(), f"no report (exit {proc.returncode}):\n{tail}"
    report = json.loads((out / "report.json").read_text())
    if RECORD:
        RECORDED.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "report.json", RECORDED / f"{MUTANT}.json")
    return {"proc": proc, "out": out, "report": report, "tail": tail}


@pytest.mark.slow
def test_no_output_of_a_real_run_holds_a_token(real_run):
    out = real_run["out"]
    with tarfile.open(out / "report.tar.gz") as bundle:
        bundle.extractall(out / "unpacked", filter="data")
    outputs = {
        str(p.relative_to(out)): p.read_text(errors="replace")
        for p in out.rglob("*")
        if p.is_file() and not p.name.endswith(".tar.gz") and "basetemp" not in p.parts
    }
    assert {"report.json", "summary.md", "report.html", "junit.xml", "step-summary.md"} <= set(outputs)
    assert any(name.startswith("report-artifacts/SEC-001/") for name in outputs)
    # The review transcript from the apiserver's audit log (the local provider runs the apiserver).
    assert "report-artifacts/SEC-001/reviews.json" in outputs
    assert any(name.startswith("unpacked/report-artifacts/") for name in outputs)
    outputs["terminal"] = real_run["proc"].stdout + real_run["proc"].stderr
    leaks = {name: find_tokens(text) for name, text in outputs.items() if find_tokens(text)}
    assert not leaks, f"tokens in the outputs: {leaks}"
    # Tokens did pass through the run: their traces are the redacted placeholders and the jtis.
    assert "jti" in outputs["report.json"]


@pytest.mark.slow
def test_the_real_report_is_valid_and_names_what_failed(real_run):
    report = real_run["report"]
    assert real_run["proc"].returncode == 1, real_run["tail"]
    assert schema.errors(report) == []
    assert report["result"] == "not-conformant"
    assert report["mode"] == "process"
    assert report["provider"] == "local"
    assert report["server_version"].startswith("v1.")
    failed = {c["id"] for c in report["checks"] if c["outcome"] == "failed" and c["level"] == "must"}
    assert {"AUD-001", "SEC-001", "SEC-002", "REV-001"} <= failed, real_run["tail"]
    sec = next(c for c in report["checks"] if c["id"] == "SEC-001")
    assert sec["requirement"]
    assert sec["fix"]
    assert sec["sources"]
    assert report["reproduce"]["argv"][:4] == ["python", "-m", "pytest", "suites"]
    summary = (real_run["out"] / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("❌ **not-conformant**")
    assert (real_run["out"] / "step-summary.md").read_text() == summary + "\n"


@pytest.mark.slow
def test_a_sut_without_a_caller_makes_the_caller_checks_not_applicable(tmp_path):
    """The reference callee alone: the checks of a caller do not apply (not skipped: nothing is
    missing from the verdict), and the run is not made worse by them."""
    reference = (REPO / "tests" / "mutants" / "reference" / "sut.yaml").read_text()
    callee_only = reference.split("\ncaller:", 1)[0].replace(
        "store.py", str(REPO / "tests" / "mutants" / "reference" / "store.py")
    )
    (tmp_path / "sut.yaml").write_text(
        callee_only.replace('name: "pytest-k8s-sa-reference"', 'name: "callee-only"')
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "K8S_SA_", "GITHUB_"))}
    command = [
        sys.executable, "-m", "pytest", "suites/test_acceptance.py", "--sut", str(tmp_path / "sut.yaml"),
        "--k8s-provider", "local", "--conformance-report", str(tmp_path / "report.json"),
        "-p", "no:cacheprovider", "-q", "--basetemp", str(tmp_path / "basetemp"),
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    report = json.loads((tmp_path / "report.json").read_text())
    assert schema.errors(report) == []
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["ACC-001"]["outcome"] == "not-applicable", tail
    assert "names no caller" in by_id["ACC-001"]["message"]
    assert by_id["ACC-003"]["outcome"] == "passed", tail
    assert report["result"] == "conformant", (report["result_reasons"], tail)
    assert proc.returncode == 0, tail
