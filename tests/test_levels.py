"""Check levels and the SUT options, without a cluster: `must` fails the run, `should` only when strict."""

from __future__ import annotations

import json
from typing import Any

import pytest

CHECKS = """
import pytest

@pytest.mark.conformance("T-001", "a must check that passes")
def test_must(check):
    check.record("x", 1)

@pytest.mark.conformance("T-002", "a should check that fails", level="should")
def test_should(check):
    assert False, "403 expected, got 401"
"""


def _report(pytester: pytest.Pytester) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((pytester.path / "r.json").read_text())
    return report


def test_a_failed_should_check_is_reported_but_does_not_fail_the_run(pytester):
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--conformance-report", "r.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["should: 0 passed, 1 failed, 0 skipped*", "*1 passed, 1 xfailed*"])
    result.stdout.fnmatch_lines(["result: conformant-with-findings (should-level checks failed: T-002)"])
    report = _report(pytester)
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["T-002"]["level"] == "should"
    assert by_id["T-002"]["outcome"] == "failed"
    assert "403 expected" in by_id["T-002"]["message"]
    assert report["summary_by_level"] == {
        "must": {"passed": 1, "failed": 0, "skipped": 0, "not_applicable": 0},
        "should": {"passed": 0, "failed": 1, "skipped": 0, "not_applicable": 0},
    }
    assert report["result"] == "conformant-with-findings"
    assert report["implementation"]["name"] == "pytest-k8s-sa reference workloads"
    assert report["sut_digest"].startswith("sha256:")
    assert report["version"] == 3


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_strict_makes_should_failures_fail_the_run(pytester, monkeypatch, how):
    pytester.makepyfile(test_checks=CHECKS)
    args = ["-p", "no:cacheprovider", "--conformance-report", "r.json"]
    if how == "flag":
        args.append("--conformance-strict")
    elif how == "env":
        monkeypatch.setenv("K8S_SA_CONFORMANCE_STRICT", "true")
    else:
        pytester.makeini("[pytest]\nk8s_sa_conformance_strict = true\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _report(pytester)["strict"] is True
    assert _report(pytester)["result"] == "not-conformant"


def test_an_unknown_level_is_a_usage_error(pytester):
    pytester.makepyfile(
        'import pytest\n@pytest.mark.conformance("T-9", "x", level="may")\ndef test_x(check): pass\n'
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*level 'may' is not one of must, should*"])


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_a_bad_sut_file_is_a_usage_error_naming_file_and_key(pytester, monkeypatch, how):
    pytester.makepyfile(test_checks=CHECKS)
    (pytester.path / "ci").mkdir()
    (pytester.path / "ci" / "sut.yaml").write_text("implementation: {name: x}\ncallee: {command: [x]}\n")
    args = ["-p", "no:cacheprovider"]
    if how == "flag":
        args += ["--sut", "ci/sut.yaml"]
    elif how == "env":
        monkeypatch.setenv("K8S_SA_SUT", "ci/sut.yaml")
    else:
        pytester.makeini("[pytest]\nk8s_sa_sut = ci/sut.yaml\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ci/sut.yaml: callee.audience: is required*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_the_report_names_the_sut_file(pytester):
    pytester.makepyfile(test_checks=CHECKS)
    sut = pytester.path / "sut.yaml"
    sut.write_text("implementation: {name: acme, version: '1.4.2'}\ncallee: {command: [x], audience: a}\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sut", "sut.yaml", "--conformance-report", "r.json"
    )
    assert result.ret == pytest.ExitCode.OK
    report = _report(pytester)
    assert report["implementation"] == {"name": "acme", "version": "1.4.2", "url": None}
    assert report["sut_file"] == str(sut)
