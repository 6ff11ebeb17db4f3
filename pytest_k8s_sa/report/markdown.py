"""The Markdown summary for CI job pages: the result line, failed checks first (requirement, evidence,
what to fix), then a compact table of every check. GitHub renders it from ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import json
from typing import Any

ICONS = {"passed": "✅", "failed": "❌", "skipped": "⚠️", "not-applicable": "⏭️"}
RESULT_ICONS = {"conformant": "✅", "conformant-with-findings": "⚠️", "not-conformant": "❌"}
EVIDENCE_CHARS = 1200
"""Evidence beyond this is cut in the summary (the JSON report keeps it whole)."""


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """A failure message on one line, as code (pytest's messages span lines and hold ``*`` and ``_``)."""
    flat = " ".join(text.split())
    fence = "``" if "`" in flat else "`"
    return f"{fence} {flat} {fence}" if fence == "``" else f"`{flat}`"


def _evidence(evidence: dict[str, Any]) -> str:
    shown = {k: v for k, v in evidence.items() if k != "timeline"}
    text = json.dumps(shown, indent=1, default=str)
    return (
        text
        if len(text) <= EVIDENCE_CHARS
        else text[:EVIDENCE_CHARS] + "\n… (cut; the JSON report has it all)"
    )


def headline(report: dict[str, Any]) -> str:
    impl = report.get("implementation") or {}
    name = impl.get("name") or "unnamed implementation"
    version = f" {impl['version']}" if impl.get("version") else ""
    return (
        f"{RESULT_ICONS[report['result']]} **{report['result']}**: {name}{version}, "
        f"mode `{report.get('mode') or 'unknown'}`, verification `{report['verification']}`, "
        f"profile `{report['profile']}`{' (strict)' if report.get('strict') else ''}, "
        f"provider `{report.get('provider')}`, Kubernetes `{report.get('server_version')}`"
    )


def render(report: dict[str, Any]) -> str:
    """The summary of one report (format version 3)."""
    s = report["summary"]
    lines = [
        "## Service-account token conformance",
        "",
        headline(report),
        "",
        f"{s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
        f"{s['not_applicable']} not applicable ({s['emulated']} passed with the emulated kubelet). "
        + "; ".join(report["result_reasons"]).rstrip(".")
        + ".",
        "",
    ]
    failed = [c for c in report["checks"] if c["outcome"] == "failed"]
    failed.sort(key=lambda c: (c["level"] != "must", c["id"]))
    if failed:
        lines += ["### Failed checks", ""]
    for c in failed:
        lines += [
            f"#### ❌ {c['id']} ({c['level']}): {c['title']}",
            "",
            f"- **Requirement:** {c['requirement'] or c['title']}",
            f"- **Found:** {_inline(c['message'] or 'failed')}",
        ]
        if c.get("fix"):
            lines.append(f"- **Fix:** {c['fix']}")
        if c.get("why"):
            lines.append(f"- **Why it matters:** {c['why']}")
        if c.get("sources"):
            lines.append(
                "- **Sources:** " + ", ".join(f"[{src['title']}]({src['url']})" for src in c["sources"])
            )
        lines += [
            "",
            "<details><summary>evidence</summary>",
            "",
            "```json",
            _evidence(c["evidence"]),
            "```",
            "",
            "</details>",
            "",
        ]
    for outcome, heading, meaning in (
        ("skipped", "Skipped checks", "they apply, but could not be judged here"),
        ("not-applicable", "Not applicable", "outside the profile, the run's mode or what the SUT declares"),
    ):
        listed = [c for c in report["checks"] if c["outcome"] == outcome]
        if listed:
            lines += [
                f"### {ICONS[outcome]} {heading} ({meaning})",
                "",
                "| id | level | why |",
                "|---|---|---|",
            ]
            lines += [f"| {c['id']} | {c['level']} | {_cell(c['message'] or '')} |" for c in listed]
            lines.append("")
    lines += ["### All checks", "", "| | id | level | outcome | check |", "|---|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(
            f"| {ICONS[c['outcome']]} | {c['id']} | {c['level']} | {c['outcome']} | {_cell(c['title'])} |"
        )
    lines += ["", "Reproduce:", "", "```sh", report["reproduce"]["command"], "```", ""]
    return "\n".join(lines)
