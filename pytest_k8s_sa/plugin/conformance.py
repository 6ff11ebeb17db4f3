"""Conformance checks: stable IDs, recorded evidence, fidelity, profiles, and a JSON report.

A check is a test marked ``@pytest.mark.conformance("REV-001", "title", profile="fast", level="must")``
that records what it saw through the ``check`` fixture::

    def test_x(check):
        check.record("status", 403)
        check.fidelity = "emulated-kubelet"   # when the kubelet's part was emulated

Evidence travels in the test report's ``user_properties``, so it survives pytest-xdist and shows
up in JUnit XML as well (``conformance_id``). The report (``--conformance-report PATH``) follows
:data:`REPORT_SCHEMA`; a CI gate can fail on ``summary.failed > 0`` or on any check whose
fidelity is not ``real``.

Levels, as in Gateway API conformance: ``must`` checks are what every implementation has to do; a
failed one fails the run. ``should`` checks are recommended behaviour (403 rather than 401 wording, 503
rather than another 5xx when the TokenReview API is unavailable, a generic body): a failure is reported
(outcome ``failed``, shown as xfailed by pytest) but does not change the exit code unless
``--conformance-strict`` is given.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import options
from .fixtures import CLUSTER_KEY, SUT_KEY

PROFILES = ("fast", "full")
FIDELITIES = ("real", "emulated-kubelet")
LEVELS = ("must", "should")
EVIDENCE_PROPERTY = "conformance_evidence"
SHOULD_FAILED_PROPERTY = "conformance_should_failed"
REPORT_VERSION = 2
REPORT_SCHEMA = {
    "version": "int: report format version (2: adds implementation, sut_digest, level, summary_by_level)",
    "generated_at": "str: ISO 8601 UTC",
    "provider": "str: local | local-node | kind | kubeconfig",
    "server_version": "str: the apiserver's gitVersion",
    "issuer": "str: service-account issuer",
    "api_audiences": "list[str]",
    "profile": "str: fast | full",
    "implementation": "{name, version: str|null, url: str|null}: from the SUT file (or the reference)",
    "sut_digest": "str: sha256:<hex> of the SUT file's bytes (built-in reference: of its description)",
    "sut_file": "str|null: the SUT file's path (null: the built-in reference workloads)",
    "strict": "bool: should-level failures fail the run (--conformance-strict)",
    "summary": "{passed, failed, skipped, emulated}: counts over all levels",
    "summary_by_level": "{must: {passed, failed, skipped}, should: {passed, failed, skipped}}",
    "checks": "list of {id, title, level: must|should, outcome: passed|failed|skipped, seconds, "
    "fidelity: real|emulated-kubelet, evidence: object, message: str|null}",
}


@dataclass
class Check:
    """What one check records: evidence (JSON-serialisable) and fidelity."""

    id: str
    title: str
    fidelity: str = "real"
    evidence: dict[str, Any] = field(default_factory=dict)

    def record(self, key: str, value: Any) -> Any:
        """Record ``value`` under ``key`` and return it (so it can be used inline)."""
        self.evidence[key] = value
        return value


CHECK_KEY = pytest.StashKey[Check]()


def _marker(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("conformance")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "conformance(id, title, profile='fast', minutes=None, level='must'): a conformance check with a "
        "stable ID; level must (fails the gate) or should (reported; fails only with --conformance-strict)",
    )
    config.pluginmanager.register(Reporter(config), "k8s-sa-conformance-reporter")


def profile_of(config: pytest.Config) -> str:
    return str(options.get(config, "conformance_profile") or "fast")


def strict_of(config: pytest.Config) -> bool:
    return bool(options.get(config, "conformance_strict"))


def level_of(mark: pytest.Mark) -> str:
    return str(mark.kwargs.get("level", "must"))


def failure_message(report: pytest.TestReport) -> str | None:
    """The assertion's own message (pytest's crash line), else the last line of the failure."""
    if not report.longrepr:
        return None
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr).splitlines()[-1]
    return text[:500]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    profile = profile_of(config)
    seen: dict[str, str] = {}
    for item in items:
        mark = _marker(item)
        if mark is None:
            continue
        check_id = mark.args[0]
        if check_id in seen and seen[check_id] != item.nodeid:
            raise pytest.UsageError(
                f"conformance id {check_id} is used by {seen[check_id]} and {item.nodeid}"
            )
        seen[check_id] = item.nodeid
        if level_of(mark) not in LEVELS:
            raise pytest.UsageError(
                f"{item.nodeid}: level {level_of(mark)!r} is not one of {', '.join(LEVELS)}"
            )
        item.user_properties.append(("conformance_id", check_id))
        if mark.kwargs.get("profile", "fast") == "full" and profile != "full":
            minutes = mark.kwargs.get("minutes", "several")
            item.add_marker(
                pytest.mark.skip(
                    reason=f"full profile only (waits about {minutes} min in real time): "
                    "run with --conformance-profile full"
                )
            )


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    """The running conformance check: ``check.record(key, value)``, ``check.fidelity = ...``."""
    mark = _marker(request.node)
    if mark is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `check` but has no @pytest.mark.conformance")
    entry = Check(mark.args[0], mark.args[1])
    request.node.stash[CHECK_KEY] = entry
    return entry


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    mark = _marker(item)
    if mark is None or (report.when != "call" and not report.skipped and not report.failed):
        return report
    entry = item.stash.get(CHECK_KEY, None) or Check(mark.args[0], mark.args[1])
    if entry.fidelity not in FIDELITIES:
        raise ValueError(f"{entry.id}: fidelity {entry.fidelity!r} is not one of {FIDELITIES}")
    cluster = item.config.stash.get(CLUSTER_KEY, None)
    context: dict[str, Any] = {}
    if cluster is not None:
        context = {
            "provider": cluster.provider,
            "server_version": cluster.server_version,
            "issuer": cluster.issuer,
            "api_audiences": cluster.api_audiences,
        }
    level = level_of(mark)
    if level == "should" and report.failed and report.when == "call" and not strict_of(item.config):
        # Reported as a failed check, but not a failed test: the run's exit code ignores it.
        message = failure_message(report) or "failed"
        report.user_properties.append((SHOULD_FAILED_PROPERTY, message))
        report.outcome = "skipped"
        report.wasxfail = f"should-level check failed (not fatal without --conformance-strict): {message}"
    payload = {
        "id": entry.id,
        "title": entry.title,
        "level": level,
        "fidelity": entry.fidelity,
        "evidence": entry.evidence,
        "context": context,
    }
    report.user_properties.append((EVIDENCE_PROPERTY, json.dumps(payload, default=str)))
    return report


class Reporter:
    """Collects check results (in the xdist controller too: reports arrive there with their
    properties), writes the JSON report and prints the summary table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if EVIDENCE_PROPERTY not in props:
            return
        payload = json.loads(str(props[EVIDENCE_PROPERTY]))
        entry = self.results.setdefault(
            payload["id"],
            {
                "id": payload["id"],
                "title": payload["title"],
                "level": payload.get("level", "must"),
                "outcome": "passed",
                "seconds": 0.0,
                "fidelity": payload["fidelity"],
                "evidence": {},
                "message": None,
                "context": payload["context"],
            },
        )
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)
        entry["evidence"].update(payload["evidence"])
        entry["fidelity"] = payload["fidelity"]
        entry["context"] = payload["context"] or entry["context"]
        if SHOULD_FAILED_PROPERTY in props:
            entry["outcome"] = "failed"
            entry["message"] = str(props[SHOULD_FAILED_PROPERTY])
        elif report.failed:
            entry["outcome"] = "failed"
            entry["message"] = failure_message(report)
        elif report.skipped and entry["outcome"] != "failed":
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            entry["message"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)

    def build_report(self) -> dict[str, Any]:
        checks = sorted(self.results.values(), key=lambda e: e["id"])
        context: dict[str, Any] = next((c["context"] for c in checks if c["context"]), {})
        counts = {o: sum(1 for c in checks if c["outcome"] == o) for o in ("passed", "failed", "skipped")}
        counts["emulated"] = sum(1 for c in checks if c["fidelity"] != "real" and c["outcome"] == "passed")
        by_level = {
            level: {
                o: sum(1 for c in checks if c["level"] == level and c["outcome"] == o)
                for o in ("passed", "failed", "skipped")
            }
            for level in LEVELS
        }
        sut = self.config.stash.get(SUT_KEY, None)
        return {
            "version": REPORT_VERSION,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "provider": context.get("provider"),
            "server_version": context.get("server_version"),
            "issuer": context.get("issuer"),
            "api_audiences": context.get("api_audiences"),
            "profile": profile_of(self.config),
            "implementation": sut.implementation.as_dict() if sut else None,
            "sut_digest": sut.digest if sut else None,
            "sut_file": str(sut.path) if sut and sut.path else None,
            "strict": strict_of(self.config),
            "summary": counts,
            "summary_by_level": by_level,
            "checks": [{k: v for k, v in c.items() if k != "context"} for c in checks],
        }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = options.get(self.config, "conformance_report")
        if hasattr(self.config, "workerinput") or not self.results or not path:
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.build_report(), indent=2, default=str) + "\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        report = self.build_report()
        write = terminalreporter.write_line
        terminalreporter.section("conformance")
        write(f"provider={report['provider']} server={report['server_version']} profile={report['profile']}")
        impl = report["implementation"] or {}
        write(f"implementation={impl.get('name')} version={impl.get('version')} sut={report['sut_digest']}")
        for c in report["checks"]:
            write(
                f"{c['id']:<10} {c['level']:<6} {c['outcome']:<8} {c['fidelity']:<17} {c['seconds']:>7.2f}s  "
                f"{c['title']}"
            )
        for level, counts in report["summary_by_level"].items():
            note = (
                ""
                if level == "must" or report["strict"]
                else " (not fatal: --conformance-strict makes it so)"
            )
            tally = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
            write(f"{level}: {tally}{note}")
        s = report["summary"]
        write(
            f"all checks: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped "
            f"({s['emulated']} of the passed relied on the emulated kubelet)"
        )
        path = options.get(self.config, "conformance_report")
        if path:
            write(f"report: {path}")
