"""The report's writers without a cluster (pytester): the Markdown summary, ``$GITHUB_STEP_SUMMARY``,
the HTML page, the overall result, and no token in any output even when a check records one.

The same guard over a *real* run (a mutant on the local provider) is tests/test_report_real_run.py.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from pytest_k8s_sa.report import markdown, schema, verdict
from pytest_k8s_sa.report.redact import JWT, find_tokens, redact, token_summary


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


TOKEN = ".".join(
    [
        _b64({"alg": "RS256", "kid": "k1"}),
        _b64({"jti": "abc-123", "sub": "system:serviceaccount:ns:api", "exp": 2000000000}),
        "c2lnbmF0dXJlLW5vdC1yZWFs",
    ]
)

CHECKS = f"""
import pytest

TOKEN = {TOKEN!r}

@pytest.mark.conformance("ACC-001", "the caller's projected token gets a 2xx from the callee end to end")
def test_passes(check):
    check.record("status", 200)
    check.event("token granted", kind="granted")

@pytest.mark.conformance("SEC-001", "a real token with a forged signature is refused")
def test_leaky_failure(check):
    check.record("presented", TOKEN)
    check.record("statuses", {{"forged signature": 200}})
    print("the callee said yes to", TOKEN)
    assert False, f"granted {{TOKEN}}"

@pytest.mark.conformance("ACC-005", "refusals are worded as HTTP means: 401 without a credential, 403 for a "
                         "refused one", level="should")
def test_should_fails(check):
    assert False, "401 expected, got 403"
"""


@pytest.fixture
def outputs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    pytester.makepyfile(test_checks=CHECKS)
    step = pytester.path / "step-summary.md"
    step.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--conformance-report=out/report.json",
        "--conformance-summary=out/summary.md",
        "--conformance-html=out/report.html",
        "--junitxml=out/junit.xml",
    )
    out = pytester.path / "out"
    return {
        "result": result,
        "report": json.loads((out / "report.json").read_text()),
        "files": {
            str(p.relative_to(out)): p.read_text()
            for p in out.rglob("*")
            if p.is_file() and not p.name.endswith(".tar.gz")
        }
        | {"step-summary.md": step.read_text()},
    }


def test_no_output_holds_a_token_even_when_a_check_records_one(outputs):
    assert JWT.fullmatch(TOKEN)
    stdout = outputs["result"].stdout.str() + outputs["result"].stderr.str()
    for name, text in {**outputs["files"], "terminal": stdout}.items():
        assert find_tokens(text) == [], name
    sec = next(c for c in outputs["report"]["checks"] if c["id"] == "SEC-001")
    assert sec["evidence"]["presented"] == "<token jti=abc-123, sub=system:serviceaccount:ns:api>"
    assert "granted <token jti=abc-123" in sec["message"]


def test_the_report_validates_and_carries_the_catalogue(outputs):
    report = outputs["report"]
    assert schema.errors(report) == []
    assert report["version"] == 3
    assert report["result"] == "not-conformant"
    sec = next(c for c in report["checks"] if c["id"] == "SEC-001")
    assert sec["in_catalogue"] is True
    assert sec["requirement"].startswith("The callee MUST refuse")
    assert any("CWE-347" in s["title"] for s in sec["sources"])
    acc = next(c for c in report["checks"] if c["id"] == "ACC-001")
    assert acc["evidence"]["timeline"][0]["kind"] == "granted"
    assert report["reproduce"]["argv"][:3] == ["python", "-m", "pytest"]
    assert "--conformance-report=out/report.json" in report["reproduce"]["command"]
    assert report["tool"]["name"] == "pytest-k8s-sa"


def test_the_markdown_summary_puts_failures_first_with_what_to_fix(outputs):
    text = outputs["files"]["summary.md"]
    lines = text.splitlines()
    assert lines[2].startswith("❌ **not-conformant**: pytest-k8s-sa reference workloads")
    failed_at = text.index("#### ❌ SEC-001 (must)")
    assert failed_at < text.index("#### ❌ ACC-005 (should)") < text.index("### All checks")
    assert "- **Requirement:** The callee MUST refuse a token whose signature is not the cluster's." in text
    assert "- **Found:** `AssertionError: granted <token jti=abc-123" in text
    assert "- **Fix:** Verify every token through TokenReview" in text
    assert "| ✅ | ACC-001 | must | passed |" in text
    assert text.rstrip().endswith("```")  # the reproduce command closes it
    # $GITHUB_STEP_SUMMARY gets it appended, after what earlier steps wrote.
    assert outputs["files"]["step-summary.md"] == "# earlier step\n" + text + "\n"


def test_the_html_page_is_one_offline_file(outputs):
    page = outputs["files"]["report.html"]
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external script, stylesheet, image or font.
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?https?:""", page)
    assert "@import" not in page
    assert 'data-id="SEC-001" data-outcome="failed"' in page
    assert "<svg" in page  # the timeline: ACC-001 recorded an event


@pytest.mark.parametrize(
    ("outcomes", "strict", "partial", "expected"),
    [
        ([("must", "passed"), ("should", "passed")], False, False, "conformant"),
        ([("must", "passed"), ("should", "failed")], False, False, "conformant-with-findings"),
        ([("must", "passed"), ("should", "failed")], True, False, "not-conformant"),
        ([("must", "passed"), ("must", "skipped")], False, False, "conformant-with-findings"),
        ([("must", "failed"), ("should", "passed")], False, False, "not-conformant"),
        ([("must", "passed")], False, True, "conformant-with-findings"),
        ([], False, False, "not-conformant"),
    ],
)
def test_the_overall_result(outcomes, strict, partial, expected):
    checks = [{"id": f"X-{i:03}", "level": lvl, "outcome": o} for i, (lvl, o) in enumerate(outcomes)]
    result, reasons = verdict.overall(checks, strict=strict, partial=partial)
    assert result == expected
    assert reasons


def test_redaction_keeps_what_identifies_a_token_and_nothing_else():
    assert token_summary(TOKEN) == {
        "jti": "abc-123",
        "sub": "system:serviceaccount:ns:api",
        "exp": 2000000000,
    }
    unsigned = TOKEN.rsplit(".", 1)[0] + "."  # alg none: an empty signature is still a token
    assert redact({"k": [f"Bearer {unsigned}"]}) == {
        "k": ["Bearer <token jti=abc-123, sub=system:serviceaccount:ns:api>"]
    }
    assert redact("eyJnot-a-token") == "eyJnot-a-token"
    assert markdown.headline(
        {
            "result": "conformant",
            "implementation": {"name": "x", "version": "1"},
            "mode": "pod",
            "verification": "tokenreview",
            "profile": "fast",
            "provider": "kind",
            "server_version": "v1.37.2",
        }
    ).startswith("✅ **conformant**: x 1, mode `pod`")


def test_failed_checks_leave_artifacts_and_one_bundle(outputs, pytester: pytest.Pytester):
    import tarfile

    folder = pytester.path / "out" / "report-artifacts"
    assert sorted(p.name for p in folder.iterdir()) == ["ACC-005", "SEC-001"]  # the failed checks only
    check = json.loads((folder / "SEC-001" / "check.json").read_text())
    assert check["message"].startswith("AssertionError: granted <token jti=abc-123")
    assert check["evidence"]["presented"].startswith("<token jti=abc-123")
    sec = next(c for c in outputs["report"]["checks"] if c["id"] == "SEC-001")
    assert sec["artifacts"] == "report-artifacts/SEC-001"  # relative to the report, as in the bundle
    with tarfile.open(pytester.path / "out" / "report.tar.gz") as bundle:
        names = set(bundle.getnames())
    assert {"report.json", "summary.md", "report.html", "report-artifacts/SEC-001/check.json"} <= names
    for path in folder.rglob("*"):
        if path.is_file():
            assert find_tokens(path.read_text()) == [], path
