"""The conformance plugin on its own (pytester, no cluster): profile skips, duplicate ids, the
JSON report (format 3, validated against its shipped JSON Schema), the overall result, the Markdown
summary, the HTML page, and what JUnit XML carries."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pytest_k8s_sa.report import schema

CHECKS = """
import pytest

@pytest.mark.conformance("DEMO-001", "a passing check")
def test_passes(check):
    check.record("status", 403)

@pytest.mark.conformance("DEMO-002", "a failing check")
def test_fails(check):
    check.record("status", 200)
    assert False, "the store answered 200"

@pytest.mark.conformance("DEMO-003", "an emulated check")
def test_emulated(check):
    check.fidelity = "emulated-kubelet"
    check.record("rotated", True)

@pytest.mark.conformance("DEMO-004", "a real-time check", profile="full", minutes=11)
def test_slow(check):
    check.record("waited", True)

@pytest.mark.conformance("DEMO-005", "a check that cannot be judged here")
def test_skips(check):
    pytest.skip("no signing key here")
"""


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any], ET.Element]:
    report, junit = pytester.path / "report.json", pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--conformance-report={report}", f"--junitxml={junit}", *args
    )
    doc = json.loads(report.read_text())
    assert schema.errors(doc) == []
    return result, doc, ET.parse(junit).getroot()  # noqa: S314 - our own pytest's output


def test_fast_profile_skips_full_checks_and_reports_every_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    result, report, junit = _run(pytester)
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    assert report["profile"] == "fast"
    assert report["summary"] == {"passed": 2, "failed": 1, "skipped": 1, "not_applicable": 1, "emulated": 1}
    assert report["result"] == "not-conformant"
    assert report["result_reasons"][0] == "must-level checks failed: DEMO-002"
    checks = {c["id"]: c for c in report["checks"]}
    assert list(checks) == ["DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004", "DEMO-005"]
    assert checks["DEMO-001"]["outcome"] == "passed"
    assert checks["DEMO-001"]["evidence"] == {"status": 403}
    assert checks["DEMO-001"]["fidelity"] == "real"
    assert checks["DEMO-002"]["outcome"] == "failed"
    # The assertion's own message, so a reader of the report sees what the check found.
    assert checks["DEMO-002"]["message"].startswith("AssertionError: the store answered 200")
    assert checks["DEMO-002"]["evidence"] == {"status": 200}  # evidence survives a failure
    assert checks["DEMO-003"]["fidelity"] == "emulated-kubelet"
    # Outside the profile: not applicable (it does not count against the verdict); a check that
    # applies but cannot be judged here is skipped.
    assert checks["DEMO-004"]["outcome"] == "not-applicable"
    assert checks["DEMO-005"]["outcome"] == "skipped"
    assert checks["DEMO-005"]["message"] == "no signing key here"
    assert checks["DEMO-001"]["in_catalogue"] is False  # a team's own check: no catalogue text
    assert checks["DEMO-001"]["started_at"] <= checks["DEMO-001"]["stopped_at"]
    assert "--conformance-profile full" in checks["DEMO-004"]["message"]
    assert "11 min" in checks["DEMO-004"]["message"]
    # JUnit: every check carries its id as a property (the evidence is in the JSON report).
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in junit.iter("testcase")
    }
    assert properties["test_passes"]["conformance_id"] == "DEMO-001"
    assert properties["test_slow"]["conformance_id"] == "DEMO-004"
    failure = next(c for c in junit.iter("testcase") if c.get("name") == "test_fails")
    assert failure.find("failure") is not None


def test_full_profile_runs_full_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    result, report, _ = _run(pytester, "--conformance-profile", "full")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert report["profile"] == "full"
    assert {c["id"]: c["outcome"] for c in report["checks"]}["DEMO-004"] == "passed"


def test_duplicate_ids_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_dup="""
import pytest

@pytest.mark.conformance("DUP-001", "one")
def test_one(check):
    pass

@pytest.mark.conformance("DUP-001", "two")
def test_two(check):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*conformance id DUP-001 is used by *test_one and *test_two*"])
