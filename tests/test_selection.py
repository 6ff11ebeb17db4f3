"""Selecting checks without a cluster (pytester): --conformance-checks by id and area,
--conformance-level, their env and ini forms, and ``k8s-sa conformance --rerun-failed REPORT``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_k8s_sa.report.rerun import RerunError, rerun_args

CHECKS = """
import pytest

@pytest.mark.conformance("SEC-001", "one")
def test_sec1(check): pass

@pytest.mark.conformance("SEC-009", "two", level="should")
def test_sec9(check): assert False, "two failed"

@pytest.mark.conformance("REV-001", "three")
def test_rev1(check): assert False, "three failed"

def test_plain(): pass
"""


def _ids(pytester: pytest.Pytester) -> list[str]:
    return [c["id"] for c in json.loads((pytester.path / "r.json").read_text())["checks"]]


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_checks_by_id_and_area(pytester, monkeypatch, how):
    pytester.makepyfile(test_checks=CHECKS)
    args = ["-p", "no:cacheprovider", "--conformance-report", "r.json"]
    if how == "flag":
        args += ["--conformance-checks", "rev-001, sec"]
    elif how == "env":
        monkeypatch.setenv("K8S_SA_CONFORMANCE_CHECKS", "REV-001,SEC")
    else:
        pytester.makeini("[pytest]\nk8s_sa_conformance_checks = REV-001,SEC\n")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2, failed=1, xfailed=1)
    assert _ids(pytester) == ["REV-001", "SEC-001", "SEC-009"]
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["selection"] == {"checks": ["REV-001", "SEC"], "level": None}


def test_level_and_area_together(pytester):
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--conformance-report",
        "r.json",
        "--conformance-checks",
        "SEC",
        "--conformance-level",
        "must",
    )
    result.assert_outcomes(passed=2, deselected=2)
    assert _ids(pytester) == ["SEC-001"]
    report = json.loads((pytester.path / "r.json").read_text())
    # A selection passes as a selection: never "conformant" for the whole profile.
    assert report["result"] == "conformant-with-findings"
    assert any("only some checks were selected" in r for r in report["result_reasons"])


def test_an_unknown_id_is_a_usage_error(pytester):
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--conformance-checks", "SEC-404,NOPE")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--conformance-checks: SEC-404, NOPE names no collected check*"])


def test_rerun_failed_selects_exactly_the_failed_checks(pytester):
    pytester.makepyfile(test_checks=CHECKS)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--conformance-report", "first.json")
    args, failed = rerun_args(["-q", "--rerun-failed", str(pytester.path / "first.json")])
    assert failed == ["REV-001", "SEC-009"]
    assert args[:3] == ["-q", "--conformance-checks", "REV-001,SEC-009"]
    assert args[args.index("--conformance-profile") + 1] == "fast"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--conformance-report", "r.json", *args)
    result.assert_outcomes(failed=1, xfailed=1, passed=1, deselected=1)  # test_plain is no check: kept
    assert _ids(pytester) == ["REV-001", "SEC-009"]


def test_rerun_failed_refuses_what_it_cannot_use(tmp_path: Path):
    assert rerun_args(["-q"]) == (["-q"], None)
    with pytest.raises(RerunError, match="needs the path"):
        rerun_args(["--rerun-failed"])
    with pytest.raises(RerunError, match="cannot read"):
        rerun_args(["--rerun-failed", str(tmp_path / "missing.json")])
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(RerunError, match="is not a conformance report"):
        rerun_args([f"--rerun-failed={tmp_path / 'junk.json'}"])
    (tmp_path / "ok.json").write_text(json.dumps({"checks": [], "sut_file": "/ci/sut.yaml"}))
    assert rerun_args(["--rerun-failed", str(tmp_path / "ok.json")])[1] == []
    with pytest.raises(RerunError, match="drop --conformance-checks"):
        rerun_args(["--rerun-failed", str(tmp_path / "ok.json"), "--conformance-checks", "X"])


def test_the_cli_says_what_is_wrong_with_the_report(tmp_path: Path):
    import subprocess
    import sys

    run = [sys.executable, "-m", "pytest_k8s_sa.cli", "conformance", "--rerun-failed"]
    missing = subprocess.run([*run, str(tmp_path / "no.json")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "k8s-sa: error: --rerun-failed: cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "clean.json").write_text(json.dumps({"checks": [{"id": "A-001", "outcome": "passed"}]}))
    clean = subprocess.run([*run, str(tmp_path / "clean.json")], capture_output=True, text=True, check=False)
    assert clean.returncode == 0
    assert "nothing to re-run" in clean.stdout


def test_selection_and_artifacts_under_xdist(pytester):
    """Workers collect and select; the controller, which collects nothing, still reports the selection."""
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--conformance-report",
        "r.json",
        "--conformance-checks",
        "REV,SEC-001",
    )
    result.assert_outcomes(passed=2, failed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert [c["id"] for c in report["checks"]] == ["REV-001", "SEC-001"]
    assert report["selection"] == {"checks": ["REV", "SEC-001"], "level": None}
    assert report["checks"][0]["artifacts"] == "r-artifacts/REV-001"
    assert (pytester.path / "r-artifacts" / "REV-001" / "check.json").is_file()
    assert (pytester.path / "r.tar.gz").is_file()
