"""Read the JUnit file upstream's e2e framework writes, and turn it into this project's results.

The framework writes ``<report-dir>/junit_01.xml`` with one ``<testcase>`` per spec of the suite,
including the specs the focus/skip filter left out (``<skipped message="skipped"/>``, no time),
plus the suite nodes (``[SynchronizedBeforeSuite]``, ``[ReportAfterSuite] ...``). This module keeps
the selected specs and the suite nodes that failed, and gives each an outcome:

* ``passed`` / ``failed``: as ginkgo says (a suite node that failed is a failure too);
* ``skipped``: the spec skipped itself at run time (``e2eskipper``), with its reason;
* ``not-applicable``: a selected spec this cluster cannot run (pod specs on a cluster without
  nodes), left out on purpose by :mod:`.run` and reported with why, never as a failure.

Spec selection mirrors ginkgo's: a spec is selected when its full text matches the focus regex and
not the skip regex (Python's ``re`` on the same text; the default patterns mean the same in both).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
NOT_APPLICABLE = "not-applicable"
OUTCOMES = (PASSED, FAILED, SKIPPED, NOT_APPLICABLE)

_LEAF_PREFIX = re.compile(
    r"^\[(It|SynchronizedBeforeSuite|BeforeSuite|AfterSuite|SynchronizedAfterSuite|"
    r"ReportBeforeSuite|ReportAfterSuite|DeferCleanup \(Suite\))\]\s*"
)


@dataclass(frozen=True)
class SpecResult:
    """One selected spec (or failed suite node) and what happened to it."""

    spec: str
    outcome: str
    seconds: float
    reason: str = ""


@dataclass
class E2EResult:
    """All results of one run, with what was run and where (for the JSON report)."""

    specs: list[SpecResult]
    provider: str = ""
    server_version: str = ""
    focus: str = ""
    skip: str = ""
    not_applicable_reason: str = ""
    seconds: float = 0.0
    exit_code: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for s in self.specs if s.outcome == outcome)

    @property
    def ok(self) -> bool:
        """No failure, and something ran (a run that selected nothing proves nothing)."""
        return self.count(FAILED) == 0 and any(s.outcome == PASSED for s in self.specs)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["summary"] = {o: self.count(o) for o in OUTCOMES}
        return data


def spec_name(testcase_name: str) -> str:
    """``[It] [sig-auth] ServiceAccounts should ...`` -> ``[sig-auth] ServiceAccounts should ...``."""
    return _LEAF_PREFIX.sub("", testcase_name).strip()


def selected(name: str, focus: str, skip: str) -> bool:
    """Whether ginkgo's ``--ginkgo.focus``/``--ginkgo.skip`` select the spec ``name``."""
    return bool(re.search(focus, name)) and not (skip and re.search(skip, name))


def _first_line(text: str, limit: int = 300) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("[FAILED]", "[PANICKED]")):
            return line[:limit]
        if line:
            stripped = re.sub(r"^\[(FAILED|PANICKED)\]\s*", "", line)
            if stripped:
                return stripped[:limit]
    return ""


def parse_junit(
    path: Path,
    *,
    focus: str,
    skip: str,
    not_applicable: str = "",
    not_applicable_reason: str = "",
) -> list[SpecResult]:
    """The selected specs of ``path``, in file order (the framework sorts them by name).

    ``not_applicable``: a regex of specs this cluster cannot run; selected ones that match and were
    left out are reported ``not-applicable`` with ``not_applicable_reason``.
    """
    root = ET.parse(path).getroot()  # noqa: S314 - our own subprocess's report, not untrusted input
    results: list[SpecResult] = []
    for case in root.iter("testcase"):
        raw = case.get("name", "")
        name = spec_name(raw)
        seconds = round(float(case.get("time") or 0.0), 2)
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        suite_node = not raw.startswith("[It]")
        if suite_node:
            # Suite nodes matter only when they fail (then no spec could run properly).
            if failure is not None or error is not None:
                node = failure if failure is not None else error
                assert node is not None
                text = (node.text or "") or node.get("message", "")
                results.append(SpecResult(raw, FAILED, seconds, _first_line(text)))
            continue
        if not selected(name, focus, skip):
            continue
        if failure is not None or error is not None:
            node = failure if failure is not None else error
            assert node is not None
            text = (node.text or "") or node.get("message", "")
            results.append(SpecResult(name, FAILED, seconds, _first_line(text) or "failed"))
        elif skipped is not None:
            message = skipped.get("message", "")
            if message.strip() == "skipped" and not_applicable and re.search(not_applicable, name):
                results.append(SpecResult(name, NOT_APPLICABLE, 0.0, not_applicable_reason))
            else:
                reason = re.sub(r"^skipped\s*-?\s*", "", message).strip() or "skipped"
                results.append(SpecResult(name, SKIPPED, seconds, _first_line(reason)))
        else:
            results.append(SpecResult(name, PASSED, seconds))
    return results


def write_json(result: E2EResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path


def write_junit(result: E2EResult, path: Path) -> Path:
    """A plain JUnit file of the selected specs with this project's outcomes (CI dashboards)."""
    suite = ET.Element(
        "testsuite",
        name=f"upstream SIG Auth e2e on {result.provider}",
        tests=str(len(result.specs)),
        failures=str(result.count(FAILED)),
        skipped=str(result.count(SKIPPED) + result.count(NOT_APPLICABLE)),
        time=f"{result.seconds:.1f}",
    )
    for spec in result.specs:
        case = ET.SubElement(
            suite, "testcase", classname="upstream-e2e.sig-auth", name=spec.spec, time=f"{spec.seconds:.2f}"
        )
        if spec.outcome == FAILED:
            ET.SubElement(case, "failure", message=spec.reason)
        elif spec.outcome in (SKIPPED, NOT_APPLICABLE):
            ET.SubElement(case, "skipped", message=f"{spec.outcome}: {spec.reason}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suites = ET.Element("testsuites")
    suites.append(suite)
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    tree.write(path, encoding="unicode", xml_declaration=True)
    return path


def summary_table(specs: Sequence[SpecResult], spec_width: int = 120, reason_width: int = 70) -> str:
    """A fixed-width table: spec, outcome, seconds, reason (texts longer than the widths shortened)."""

    def cut(text: str, size: int) -> str:
        return text if len(text) <= size else text[: size - 3] + "..."

    spec_w = max(20, min(spec_width, max((len(s.spec) for s in specs), default=20)))
    lines = [f"{'spec':<{spec_w}}  {'outcome':<14}  {'seconds':>7}  reason"]
    lines.append("-" * len(lines[0]))
    for s in specs:
        reason = cut(s.reason, reason_width)
        lines.append(f"{cut(s.spec, spec_w):<{spec_w}}  {s.outcome:<14}  {s.seconds:>7.1f}  {reason}")
    return "\n".join(lines)


def counts_line(specs: Iterable[SpecResult]) -> str:
    specs = list(specs)
    return ", ".join(f"{sum(1 for s in specs if s.outcome == o)} {o}" for o in OUTCOMES)
