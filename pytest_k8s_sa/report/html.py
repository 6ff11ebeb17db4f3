"""One self-contained HTML file: the result, filters by outcome, area and level, every check with its
catalogue text and evidence, and the timeline. Inline CSS, script and SVG; nothing is fetched, so it
reads the same offline, from a CI artifact or an e-mail attachment."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from . import timeline
from .markdown import headline

TEMPLATE = "report.html.j2"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_k8s_sa.report", ""),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _events(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every timeline point of the run, in time order (the table under the picture)."""
    points = [
        {"check": c["id"], "clock": timeline.clock(p["at"]), **p}
        for c in report["checks"]
        for p in c["evidence"].get("timeline", [])
        if isinstance(p.get("at"), int | float)
    ]
    return sorted(points, key=lambda p: p["at"])


def render(report: dict[str, Any]) -> str:
    """The HTML page of one report (format version 3)."""
    checks = sorted(
        report["checks"],
        key=lambda c: (["failed", "skipped", "passed", "not-applicable"].index(c["outcome"]), c["id"]),
    )
    shown = {k: v for k, v in report.items() if k != "checks"}
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            report=report,
            run=shown,
            checks=checks,
            headline=headline(report).replace("**", "").replace("`", ""),
            events=_events(report),
            areas=sorted({c["area"] for c in checks}),
            outcomes=["failed", "skipped", "passed", "not-applicable"],
            timeline=timeline.svg(report),
            evidence=lambda c: json.dumps(c["evidence"], indent=2, default=str),
            run_json=json.dumps(shown, indent=2, default=str),
        )
    )
