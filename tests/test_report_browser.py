"""The HTML report in a real browser: headless Chromium (Debian's package) driven by Playwright.

It opens the page rendered from a *recorded* failing report (``tests/data/recorded/no_review.json``,
the mutant that trusts the JWT payload; re-recorded by ``K8S_SA_RECORD_REPORTS=1 pytest
tests/test_report_real_run.py``), offline: every request that is not the file itself is refused and
counted. It reads the result, filters by outcome, level, area and text, and finds the failed check
with its requirement and what to fix. Playwright cannot download browsers here, so it drives the
system's ``chromium``; without it the test skips, naming the command to install it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_k8s_sa.report import html, schema

RECORDED = Path(__file__).resolve().parent / "data" / "recorded" / "no_review.json"
CHROMIUM = shutil.which("chromium")
SCREENSHOT = os.environ.get("K8S_SA_REPORT_SCREENSHOT")
"""Where to save a screenshot of the page (to look at it), if set."""

pytestmark = pytest.mark.host_commands("chromium")
"""Debian's chromium drives the page (Playwright cannot download browsers here); without it the tests
skip naming the missing command and the apt-get line."""


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(RECORDED.read_text())
    assert schema.errors(report) == [], "the recorded report no longer fits the schema: re-record it"
    return report


@pytest.fixture(scope="module")
def page_file(recorded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html.render(recorded), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _visible_ids(page) -> list[str]:
    return [
        str(i)
        for i in page.eval_on_selector_all(
            "details.check:not(.hidden)", "nodes => nodes.map(n => n.dataset.id)"
        )
    ]


def test_the_page_reads_offline_and_filters_down_to_the_failed_check(browser, page_file, recorded):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requested: list[str] = []

    def refuse_the_network(route):
        if route.request.url != page_file.as_uri():
            requested.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", refuse_the_network)
    page.goto(page_file.as_uri())
    assert requested == [], f"the page fetched {requested}: it must be self-contained"

    result = page.locator("#result")
    assert result.get_attribute("data-result") == "not-conformant"
    assert "not-conformant" in result.inner_text()
    all_ids = _visible_ids(page)
    assert len(all_ids) == len(recorded["checks"])
    failed = sorted(c["id"] for c in recorded["checks"] if c["outcome"] == "failed")
    assert "SEC-001" in failed
    assert all_ids[: len(failed)] == failed  # failed checks come first

    # Show only failed checks: untick every other outcome.
    for outcome in ("passed", "skipped", "not-applicable"):
        page.uncheck(f'input[name="outcome"][value="{outcome}"]')
    assert sorted(_visible_ids(page)) == failed
    assert page.inner_text("#shown-count") == f"{len(failed)} of {len(all_ids)} checks shown"

    # Narrow to one area, then find the forged-signature check by text.
    page.select_option("#area-filter", "SEC")
    assert set(_visible_ids(page)) == {i for i in failed if i.startswith("SEC-")}
    page.fill("#text-filter", "forged signature")
    assert _visible_ids(page) == ["SEC-001"]
    check = page.locator("#check-SEC-001")
    assert check.get_attribute("open") is not None  # failed checks are open
    text = check.inner_text()
    assert "The callee MUST refuse a token whose signature is not the cluster's." in text
    assert "Verify every token through TokenReview" in text
    assert '"forged signature"' in check.locator("pre.evidence").inner_text()

    # Level filter: should-level only leaves no must-level check visible.
    page.fill("#text-filter", "")
    page.select_option("#area-filter", "")
    page.uncheck('input[name="level"][value="must"]')
    assert all(page.get_attribute(f"#check-{i}", "data-level") == "should" for i in _visible_ids(page))
    page.check('input[name="level"][value="must"]')
    for outcome in ("passed", "skipped", "not-applicable"):
        page.check(f'input[name="outcome"][value="{outcome}"]')
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    page.close()


def test_the_timeline_draws_the_recorded_events(browser, page_file, recorded):
    timed = [c["id"] for c in recorded["checks"] if c["evidence"].get("timeline")]
    assert timed, "the recorded report has no timeline events: re-record it"
    page = browser.new_page()
    page.goto(page_file.as_uri())
    rows = page.eval_on_selector_all("svg.timeline g.row", "nodes => nodes.map(n => n.dataset.check)")
    assert set(timed) <= set(rows)
    refused_points = page.locator("svg.timeline circle.refused")
    assert refused_points.count() > 0  # revocation: refused by TokenReview
    box = page.locator("svg.timeline").bounding_box()
    assert box is not None
    assert box["width"] > 300
    page.close()
