"""The timeline picture: when each check ran and when tokens were granted and refused, as inline SVG.

Rows are the checks that have timestamps worth drawing: every check with ``evidence.timeline`` points
(``check.event(...)``), and the checks of the real-time areas (expiry, rotation, revocation, review
rights, outages, caching) that ran (passed or failed), whose bar is the check's own span. Points are
coloured by kind: granted (green), refused (red), info (grey); hovering shows the event and its
time. Pure SVG, no script, no fonts fetched.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

REAL_TIME_AREAS = ("EXP", "ROT", "REV", "RBAC", "CACHE", "KEY")
REAL_TIME_IDS = ("SEC-011", "SEC-012", "SEC-013")
COLOURS = {"granted": "#1a7f37", "refused": "#cf222e", "info": "#6e7781"}
LABEL_WIDTH, ROW, PLOT_WIDTH, AXIS = 110, 26, 760, 30


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks to draw, with their span and points (Unix seconds)."""
    chosen = []
    for check in report["checks"]:
        points = [p for p in check["evidence"].get("timeline", []) if isinstance(p.get("at"), int | float)]
        real_time = check["area"] in REAL_TIME_AREAS or check["id"] in REAL_TIME_IDS
        ran = check["outcome"] in ("passed", "failed") and check.get("started_at")
        if not points and not (real_time and ran):
            continue
        chosen.append({"check": check, "points": points})
    return chosen


def clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S")


def svg(report: dict[str, Any]) -> str | None:
    """The timeline as an ``<svg>`` element, or None when no check has anything to draw."""
    drawn = rows(report)
    times: list[float] = [
        float(t)
        for row in drawn
        for t in [
            row["check"].get("started_at"),
            row["check"].get("stopped_at"),
            *(p["at"] for p in row["points"]),
        ]
        if t
    ]
    if not times:
        return None
    first, last = min(times), max(times)
    span = max(last - first, 1.0)

    def x(at: float) -> float:
        return round(float(at - first) / span * PLOT_WIDTH + LABEL_WIDTH, 1)

    height = AXIS + ROW * len(drawn) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
        f'width="{LABEL_WIDTH + PLOT_WIDTH + 50}" height="{height}" '
        f'aria-label="timeline of the real-time checks, {clock(first)} to {clock(last)} UTC">'
    ]
    for i in range(5):
        at = first + span * i / 4
        out.append(
            f'<line x1="{x(at)}" y1="{AXIS - 6}" x2="{x(at)}" y2="{height}" stroke="#d0d7de"/>'
            f'<text x="{x(at)}" y="{AXIS - 10}" font-size="11" text-anchor="middle">{clock(at)}</text>'
        )
    for index, row in enumerate(drawn):
        check = row["check"]
        y = AXIS + ROW * index + ROW / 2
        out.append(
            f'<g class="row" data-check="{escape(check["id"])}">'
            f'<text x="4" y="{y + 4}" font-size="12">{escape(check["id"])}</text>'
        )
        if check.get("started_at") and check.get("stopped_at"):
            left, right = x(check["started_at"]), x(check["stopped_at"])
            colour = COLOURS["refused"] if check["outcome"] == "failed" else "#8c959f"
            out.append(
                f'<rect x="{left}" y="{y - 4}" width="{max(right - left, 2)}" height="8" rx="2" '
                f'fill="{colour}" opacity="0.35"><title>{escape(check["id"])} ran '
                f"{clock(check['started_at'])} to {clock(check['stopped_at'])} UTC ({check['outcome']})"
                "</title></rect>"
            )
        for point in row["points"]:
            kind = point.get("kind", "info")
            label = f"{point['event']} at {clock(point['at'])} UTC ({kind})"
            out.append(
                f'<circle cx="{x(point["at"])}" cy="{y}" r="5" fill="{COLOURS.get(kind, COLOURS["info"])}" '
                f'class="point {escape(kind)}"><title>{escape(check["id"])}: {escape(label)}</title></circle>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
