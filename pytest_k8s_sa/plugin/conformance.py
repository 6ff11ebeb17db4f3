"""Conformance checks: stable IDs, recorded evidence, fidelity, profiles, and a JSON report.

A check is a test marked ``@pytest.mark.conformance("REV-001", "title", profile="fast", level="must")``
that records what it saw through the ``check`` fixture::

    def test_x(check):
        check.record("status", 403)
        check.fidelity = "emulated-kubelet"   # when the kubelet's part was emulated

Evidence travels in the test report's ``user_properties``, so it survives pytest-xdist and shows
up in JUnit XML as well (``conformance_id``). ``check.event("granted", kind="granted")`` adds a
timestamped point to the check's ``timeline`` (drawn by the HTML report). The report
(``--conformance-report PATH``, format version 3) follows the JSON Schema shipped in
``pytest_k8s_sa/report/report-v3.schema.json``; each check carries its catalogue entry
(:mod:`pytest_k8s_sa.catalogue`: requirement, why, sources, fix), and the run an overall ``result``
(:mod:`pytest_k8s_sa.report.verdict`). ``--conformance-summary`` writes Markdown (and appends it to
``$GITHUB_STEP_SUMMARY``), ``--conformance-html`` one self-contained HTML file. No token appears in
any of them (:mod:`pytest_k8s_sa.report.redact`).

Outcomes: ``passed``, ``failed``, ``skipped`` (the check applies but could not be judged here, the
reason in ``message``) and ``not-applicable`` (outside the profile, the run's mode, or what the SUT
declares: :func:`not_applicable`).

Levels, as in Gateway API conformance: ``must`` checks are what every implementation has to do; a
failed one fails the run. ``should`` checks are recommended behaviour (403 rather than 401 wording, 503
rather than another 5xx when the TokenReview API is unavailable, a generic body): a failure is reported
(outcome ``failed``, shown as xfailed by pytest) but does not change the exit code unless
``--conformance-strict`` is given.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..catalogue import load as load_catalogue
from ..report import artifacts, verdict
from ..report import markdown as markdown_report
from ..report.redact import redact, redact_text
from ..report.reproduce import reproduce
from . import options
from .fixtures import CLUSTER_KEY, SUT_KEY

PROFILES = ("fast", "full")
FIDELITIES = ("real", "emulated-kubelet")
LEVELS = ("must", "should")
EVIDENCE_PROPERTY = "conformance_evidence"
SHOULD_FAILED_PROPERTY = "conformance_should_failed"
FAILURE_PROPERTY = "conformance_failure"
ARTIFACTS_PROPERTY = "conformance_artifacts"
NOT_APPLICABLE = "not applicable: "
"""The prefix of a skip reason that makes the outcome ``not-applicable`` (see :func:`not_applicable`)."""
REPORT_VERSION = 3
REPORT_SCHEMA = {
    "version": "int: report format version (3: result, mode, catalogue fields, not-applicable; "
    "the full JSON Schema is pytest_k8s_sa/report/report-v3.schema.json)",
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
    "tool": "{name, version}: this package",
    "mode": "str|null: process | pod (how the SUT ran)",
    "verification": "str: tokenreview | jwks (the SUT file's callee.verification)",
    "result": "str: conformant | conformant-with-findings | not-conformant",
    "result_reasons": "list[str]: why that result",
    "selection": "{checks, level}|null: what --conformance-checks / --conformance-level chose",
    "reproduce": "{command, argv, cwd, env}: the command line that reproduces the run",
    "summary": "{passed, failed, skipped, not_applicable, emulated}: counts over all levels",
    "summary_by_level": "{must: {passed, failed, skipped, not_applicable}, should: {...}}",
    "checks": "list of {id, title, area, level, profile, modes, requirement, why, sources, fix, outcome: "
    "passed|failed|skipped|not-applicable, seconds, started_at, stopped_at, fidelity, evidence, message}",
}
OUTCOMES = ("passed", "failed", "skipped", "not-applicable")


def not_applicable(reason: str) -> None:
    """Skip the running check as ``not-applicable`` (the SUT declares no caller, the mode excludes it):
    unlike a plain skip, it does not keep a run from being ``conformant``."""
    pytest.skip(NOT_APPLICABLE + reason)


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

    def event(self, event: str, kind: str = "info", at: float | None = None, **details: Any) -> None:
        """A point on the check's timeline: ``kind`` granted, refused or info; ``at`` Unix time (now)."""
        if kind not in ("granted", "refused", "info"):
            raise ValueError(f"{self.id}: event kind {kind!r} is not granted, refused or info")
        point = {"at": round(time.time() if at is None else float(at), 3), "event": event, "kind": kind}
        self.evidence.setdefault("timeline", []).append({**point, **details})


CHECK_KEY = pytest.StashKey[Check]()
STARTED_KEY = pytest.StashKey[float]()
"""Unix time a check's setup began: its failure artifacts' review transcript starts there."""


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
    return redact_text(text)[:500]


def _select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the checks named by --conformance-checks (ids or areas) and --conformance-level; the rest
    are deselected (so the fixtures and scenarios only they need are never set up). Tests without a
    conformance marker are left alone. A word that names no collected check is a usage error."""
    selection = selection_of(config)
    if selection is None:
        return
    words, level = selection["checks"] or [], selection["level"]
    ids = {m.args[0] for m in (_marker(i) for i in items) if m is not None}
    unknown = [w for w in words if w not in ids and not any(i.split("-", 1)[0] == w for i in ids)]
    if unknown:
        raise pytest.UsageError(
            f"--conformance-checks: {', '.join(unknown)} names no collected check (ids and areas: "
            "`k8s-sa checks` lists them)"
        )
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mark = _marker(item)
        chosen = mark is None or (
            (not words or mark.args[0] in words or mark.args[0].split("-", 1)[0] in words)
            and (not level or level_of(mark) == level)
        )
        (kept if chosen else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def selection_of(config: pytest.Config) -> dict[str, Any] | None:
    """What --conformance-checks / --conformance-level select (None: the whole profile). Read from
    the options, not from collection, so the xdist controller (which does not collect) knows it too."""
    raw = options.get(config, "conformance_checks")
    level = options.get(config, "conformance_level")
    if not raw and not level:
        return None
    words = [w.strip().upper() for w in str(raw or "").split(",") if w.strip()]
    return {"checks": words or None, "level": level}


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
                    reason=f"{NOT_APPLICABLE}full profile only (waits about {minutes} min in real time): "
                    "run with --conformance-profile full"
                )
            )
    _select(config, items)


def run_mode(config: pytest.Config) -> str | None:
    """How the SUT runs in this session: ``pod`` where the cluster runs pods, else ``process``."""
    cluster = config.stash.get(CLUSTER_KEY, None)
    if cluster is None:
        return None
    return "pod" if cluster.capabilities.runs_pods else "process"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A catalogued check whose modes exclude this run's mode is not applicable here."""
    item.stash[STARTED_KEY] = time.time()
    mark = _marker(item)
    entry = load_catalogue().get(mark.args[0]) if mark is not None else None
    mode = run_mode(item.config)
    if entry is not None and not entry.applies_to(mode):
        not_applicable(f"{entry.id} applies in {', '.join(entry.modes)} mode, this run is in {mode} mode")
    sut = item.config.stash.get(SUT_KEY, None)
    verification = sut.callee.verification if sut is not None else None
    reason = entry.why_not_applicable(verification) if entry is not None and verification else None
    if reason is not None:
        not_applicable(f"this callee declares verification: {verification}; {reason}")


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
    if mark is not None:
        if report.failed:  # the crash line, read before redaction may turn longrepr into plain text
            report.user_properties.append((FAILURE_PROPERTY, failure_message(report) or "failed"))
        _redact_test_report(report)
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
            "mode": run_mode(item.config),
        }
    level = level_of(mark)
    if level == "should" and report.failed and report.when == "call" and not strict_of(item.config):
        # Reported as a failed check, but not a failed test: the run's exit code ignores it.
        message = str(dict(report.user_properties).get(FAILURE_PROPERTY) or "failed")
        report.user_properties.append((SHOULD_FAILED_PROPERTY, message))
        report.outcome = "skipped"
        report.wasxfail = f"should-level check failed (not fatal without --conformance-strict): {message}"
    payload = {
        "id": entry.id,
        "title": entry.title,
        "level": level,
        "profile": str(mark.kwargs.get("profile", "fast")),
        "fidelity": entry.fidelity,
        "evidence": entry.evidence,
        "context": context,
        "nodeid": item.nodeid,
    }
    report.user_properties.append((EVIDENCE_PROPERTY, json.dumps(payload, default=str)))
    props = dict(report.user_properties)
    folder = artifacts_dir(item.config)
    if folder is not None and (report.failed or SHOULD_FAILED_PROPERTY in props):
        reason = props.get(SHOULD_FAILED_PROPERTY) or props.get(FAILURE_PROPERTY)
        saved = _save_artifacts(item, folder, {**payload, "message": reason, "when": report.when})
        report.user_properties.append((ARTIFACTS_PROPERTY, str(saved)))
    return report


def artifacts_dir(config: pytest.Config) -> Path | None:
    """--conformance-artifacts, else ``<report>-artifacts`` beside --conformance-report, else None."""
    explicit = options.get(config, "conformance_artifacts")
    if explicit:
        return Path(config.invocation_params.dir, explicit)
    report = options.get(config, "conformance_report")
    if report:
        path = Path(config.invocation_params.dir, report)
        return path.with_name(f"{path.stem}-artifacts")
    return None


def _save_artifacts(item: pytest.Item, folder: Path, check: dict[str, Any]) -> Path:
    """Gather what explains the failure now, while the workloads still run; a failure to gather is
    written down in the folder, never raised (the check's own failure is what the run reports)."""
    funcargs = getattr(item, "funcargs", {})
    run = funcargs.get("sut_run")
    deployment = getattr(run, "deployment", None) or funcargs.get("deployment")
    cluster = item.config.stash.get(CLUSTER_KEY, None)
    try:
        files = artifacts.collect(
            deployment,
            cluster.api_client if cluster else None,
            run_mode(item.config) == "pod",
            review_log=cluster.review_log if cluster else None,
            # A second before the setup: the apiserver's and this process's clocks are the same
            # machine's, the margin is for the audit stamps' rounding.
            since=item.stash.get(STARTED_KEY, time.time()) - 1.0,
            suite_username=cluster.username if cluster and cluster.review_log else None,
        )
    except Exception as exc:  # the artifacts must never turn a verdict into a crash
        files = {"collect-error.txt": f"gathering the artifacts failed: {type(exc).__name__}: {exc}\n"}
    return artifacts.write(folder, str(check["id"]), files, check)


def _redact_test_report(report: pytest.TestReport) -> None:
    """No token in what pytest prints or writes to JUnit: a failure's text and the captured output of
    a check are redacted (a token becomes ``<token jti=..., sub=...>``) when they hold one."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        cleaned = redact_text(text)
        if cleaned != text:
            report.longrepr = cleaned
    report.sections = [(title, redact_text(body)) for title, body in report.sections]


class Reporter:
    """Collects check results (in the xdist controller too: reports arrive there with their
    properties), writes the JSON report and prints the summary table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, dict[str, Any]] = {}
        self.bundle: Path | None = None

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
                "profile": payload.get("profile", "fast"),
                "outcome": "passed",
                "seconds": 0.0,
                "started_at": None,
                "stopped_at": None,
                "fidelity": payload["fidelity"],
                "evidence": {},
                "message": None,
                "nodeid": payload.get("nodeid"),
                "artifacts": None,
                "context": payload["context"],
            },
        )
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)
        start, stop = getattr(report, "start", None), getattr(report, "stop", None)
        if start is not None:
            entry["started_at"] = round(min(start, entry["started_at"] or start), 3)
        if stop is not None:
            entry["stopped_at"] = round(max(stop, entry["stopped_at"] or stop), 3)
        entry["evidence"].update(payload["evidence"])
        entry["fidelity"] = payload["fidelity"]
        entry["context"] = payload["context"] or entry["context"]
        if ARTIFACTS_PROPERTY in props:
            entry["artifacts"] = str(props[ARTIFACTS_PROPERTY])
        if SHOULD_FAILED_PROPERTY in props:
            entry["outcome"] = "failed"
            entry["message"] = str(props[SHOULD_FAILED_PROPERTY])
        elif report.failed:
            entry["outcome"] = "failed"
            entry["message"] = str(props.get(FAILURE_PROPERTY) or failure_message(report))
        elif report.skipped and entry["outcome"] != "failed":
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            reason = reason.removeprefix("Skipped: ")
            applies = not reason.startswith(NOT_APPLICABLE)
            entry["outcome"] = "skipped" if applies else "not-applicable"
            entry["message"] = reason if applies else reason[len(NOT_APPLICABLE) :]

    def _relative(self, folder: str | None) -> str | None:
        """An artifacts folder relative to the report's folder (as it is inside the bundle), if below it."""
        report = options.get(self.config, "conformance_report")
        if folder is None or not report:
            return folder
        base = Path(self.config.invocation_params.dir, report).parent.resolve()
        try:
            return str(Path(folder).resolve().relative_to(base))
        except ValueError:
            return folder

    def build_report(self) -> dict[str, Any]:
        """The report (format version 3, valid against the shipped JSON Schema), tokens redacted."""
        catalogue = load_catalogue()
        checks = []
        for found in sorted(self.results.values(), key=lambda e: e["id"]):
            known = catalogue.get(found["id"])
            described = known.as_dict() if known else {}
            checks.append(
                {
                    "id": found["id"],
                    "title": found["title"],
                    "area": found["id"].split("-", 1)[0],
                    "level": found["level"],
                    "profile": found["profile"],
                    "modes": described.get("modes", ["process", "pod"]),
                    "verification": described.get("verification", ["tokenreview"]),
                    "requirement": described.get("requirement"),
                    "why": described.get("why"),
                    "sources": described.get("sources", []),
                    "fix": described.get("fix"),
                    "in_catalogue": known is not None,
                    **{k: found[k] for k in ("outcome", "seconds", "started_at", "stopped_at", "fidelity")},
                    "evidence": found["evidence"],
                    "message": found["message"],
                    "nodeid": found["nodeid"],
                    "artifacts": self._relative(found["artifacts"]),
                }
            )
        context: dict[str, Any] = next((r["context"] for r in self.results.values() if r["context"]), {})
        counts = {o.replace("-", "_"): sum(1 for c in checks if c["outcome"] == o) for o in OUTCOMES}
        counts["emulated"] = sum(1 for c in checks if c["fidelity"] != "real" and c["outcome"] == "passed")
        by_level = {
            level: {
                o.replace("-", "_"): sum(1 for c in checks if c["level"] == level and c["outcome"] == o)
                for o in OUTCOMES
            }
            for level in LEVELS
        }
        applicable = [c for c in checks if c["outcome"] != "not-applicable"]
        strict = strict_of(self.config)
        selection = selection_of(self.config)
        result, reasons = verdict.overall(applicable, strict=strict, partial=selection is not None)
        sut = self.config.stash.get(SUT_KEY, None)
        params = self.config.invocation_params
        report = {
            "version": REPORT_VERSION,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tool": {"name": "pytest-k8s-sa", "version": _tool_version()},
            "provider": context.get("provider"),
            "server_version": context.get("server_version"),
            "issuer": context.get("issuer"),
            "api_audiences": context.get("api_audiences"),
            "implementation": sut.implementation.as_dict() if sut else None,
            "sut_digest": sut.digest if sut else None,
            "sut_file": str(sut.path) if sut and sut.path else None,
            "mode": context.get("mode"),
            "verification": sut.callee.verification if sut else "tokenreview",
            "profile": profile_of(self.config),
            "strict": strict,
            "selection": selection,
            "result": result,
            "result_reasons": reasons,
            "summary": counts,
            "summary_by_level": by_level,
            "reproduce": reproduce(list(params.args), params.dir),
            "catalogue_version": catalogue.version,
            "checks": checks,
        }
        redacted: dict[str, Any] = redact(json.loads(json.dumps(report, default=str)))
        return redacted

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.results:
            return
        report = self.build_report()
        path = options.get(self.config, "conformance_report")
        if path:
            _write(Path(path), json.dumps(report, indent=2) + "\n")
        summary_path = options.get(self.config, "conformance_summary")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path or step_summary:
            text = markdown_report.render(report)
            if summary_path:
                _write(Path(summary_path), text)
            if step_summary:
                with open(step_summary, "a", encoding="utf-8") as page:
                    page.write(text + "\n")
        html_path = options.get(self.config, "conformance_html")
        if html_path:
            from ..report import html as html_report

            _write(Path(html_path), html_report.render(report))
        folder = artifacts_dir(self.config)
        if path and folder is not None and folder.is_dir():
            target = Path(path)
            outputs = [Path(p) for p in (path, summary_path, html_path) if p]
            self.bundle = artifacts.bundle(target.with_name(f"{target.stem}.tar.gz"), [*outputs, folder])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        report = self.build_report()
        write = terminalreporter.write_line
        terminalreporter.section("conformance")
        write(f"provider={report['provider']} server={report['server_version']} profile={report['profile']}")
        impl = report["implementation"] or {}
        write(f"implementation={impl.get('name')} version={impl.get('version')} sut={report['sut_digest']}")
        write(f"mode={report['mode']} verification={report['verification']}")
        for c in report["checks"]:
            write(
                f"{c['id']:<10} {c['level']:<6} {c['outcome']:<14} {c['fidelity']:<17} "
                f"{c['seconds']:>7.2f}s  {c['title']}"
            )
        for level, counts in report["summary_by_level"].items():
            note = (
                ""
                if level == "must" or report["strict"]
                else " (not fatal: --conformance-strict makes it so)"
            )
            tally = (
                f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped, "
                f"{counts['not_applicable']} not applicable"
            )
            write(f"{level}: {tally}{note}")
        s = report["summary"]
        write(
            f"all checks: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
            f"{s['not_applicable']} not applicable "
            f"({s['emulated']} of the passed relied on the emulated kubelet)"
        )
        for outcome, heading in (
            ("skipped", "could not be judged here"),
            ("not-applicable", "not applicable"),
        ):
            listed = [c for c in report["checks"] if c["outcome"] == outcome]
            if listed:
                write(f"{heading}:")
            for c in listed:
                write(f"  {c['id']:<10} {c['message'] or '(no reason given)'}")
        write(f"result: {report['result']} ({'; '.join(report['result_reasons'])})")
        for dest, what in (
            ("conformance_report", "report"),
            ("conformance_summary", "summary"),
            ("conformance_html", "html"),
        ):
            path = options.get(self.config, dest)
            if path:
                write(f"{what}: {path}")
        folder = artifacts_dir(self.config)
        if folder is not None and folder.is_dir():
            write(f"artifacts of the failed checks: {folder}")


def _tool_version() -> str:
    try:
        return importlib.metadata.version("pytest-k8s-sa")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
