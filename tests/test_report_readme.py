"""The README's Markdown verdict example is the summary of a real run, not hand-written.

It is the beginning of :func:`pytest_k8s_sa.report.markdown.render` of the report recorded from a
real run of ``tests/mutants/no_review`` (``tests/data/recorded/no_review.json``, re-recorded with
``K8S_SA_RECORD_REPORTS=1 pytest tests/test_report_real_run.py``): the result line, the counts and
the first failed check. ``K8S_SA_UPDATE_README=1`` writes the example into the README instead of
comparing (after a change of the writer or a new recording).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pytest_k8s_sa.report import markdown, schema

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RECORDED = REPO / "tests" / "data" / "recorded" / "no_review.json"
BEGIN = (
    "<!-- verdict example: rendered from tests/data/recorded/no_review.json, see test_report_readme.py -->"
)
END = "<!-- end of the verdict example -->"


def excerpt(text: str) -> str:
    """The summary up to (not including) its second failed check, then a line saying the rest is cut."""
    lines = text.splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("#### ")]
    cut = headings[1] if len(headings) > 1 else len(lines)
    body = "\n".join(lines[:cut]).rstrip("\n")
    return f"````markdown\n{body}\n\n… (the other failed checks, then the table of all checks)\n````\n"


def test_the_readme_example_is_the_summary_of_the_recorded_real_run():
    report = json.loads(RECORDED.read_text())
    assert schema.errors(report) == [], "the recorded report no longer fits the schema: re-record it"
    assert report["provider"] == "local"  # a real run, not a made-up report
    assert report["server_version"].startswith("v1.")
    expected = excerpt(markdown.render(report))
    text = README.read_text()
    assert BEGIN in text, "the README lost the verdict example's markers"
    assert END in text, "the README lost the verdict example's markers"
    before, rest = text.split(BEGIN, 1)
    inside, after = rest.split(END, 1)
    if os.environ.get("K8S_SA_UPDATE_README", "") not in ("", "0"):
        README.write_text(f"{before}{BEGIN}\n{expected}{END}{after}")
        inside = "\n" + expected
    assert inside.strip("\n") == expected.strip("\n"), (
        "the README's verdict example differs from the recorded run's summary: "
        "run `K8S_SA_UPDATE_README=1 python -m pytest tests/test_report_readme.py`"
    )
