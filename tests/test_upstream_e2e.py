"""``k8s-sa upstream-e2e``: result parsing on a recorded JUnit file, spec selection, and one run
of two upstream specs on the ``local`` provider end to end (one passes, one is not applicable).

The end-to-end test needs the e2e binary (``k8s-sa upstream-e2e --build-only``, which
``nox -s tests`` runs before pytest); without it the test skips locally and fails under CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_k8s_sa.base.errors import BuildError, K8sSAError
from pytest_k8s_sa.providers.base import Capabilities, ClusterInfo
from pytest_k8s_sa.upstream_e2e import build, results
from pytest_k8s_sa.upstream_e2e.run import (
    DEFAULT_FOCUS,
    POD_SPECS,
    RunOptions,
    default_skip,
    e2e_argv,
    run_specs,
    validate_regex,
)

DATA = Path(__file__).parent / "data" / "upstream_e2e"
RECORDED = DATA / "junit_01.xml"
"""Recorded from the e2e binary on `local` (pod specs left out), with one spec turned into a failure
and one into a run-time skip as upstream writes them, and a failed suite node."""


SA = "[sig-auth] ServiceAccounts"


def _by_name(specs: list[results.SpecResult]) -> dict[str, results.SpecResult]:
    return {s.spec: s for s in specs}


def test_recorded_junit_gives_one_result_per_selected_spec():
    specs = results.parse_junit(
        RECORDED,
        focus=DEFAULT_FOCUS,
        skip=default_skip(),
        not_applicable=POD_SPECS,
        not_applicable_reason="no node",
    )
    by_name = _by_name(specs)
    # Twelve default-selected specs plus the failed suite node; unselected ones (Certificates API,
    # [Slow], Feature:OffByDefault) are not reported at all.
    assert len(specs) == 13
    assert not any("Certificates API" in s.spec or "[Slow]" in s.spec for s in specs)
    lifecycle = by_name[
        "[sig-auth] ServiceAccounts should run through the lifecycle of a ServiceAccount [Conformance]"
    ]
    assert lifecycle.outcome == results.PASSED
    assert lifecycle.seconds > 0
    mount = by_name[f"{SA} should mount an API token into pods [Conformance]"]
    assert (mount.outcome, mount.reason, mount.seconds) == (results.NOT_APPLICABLE, "no node", 0.0)
    failed = [s for s in specs if s.outcome == results.FAILED]
    assert {s.spec for s in failed} == {
        f"{SA} should update a ServiceAccount [Conformance]",
        "[SynchronizedAfterSuite]",
    }
    assert all(s.reason and not s.reason.startswith("[FAILED]") for s in failed)
    skipped = [s for s in specs if s.outcome == results.SKIPPED]
    assert len(skipped) == 1
    assert "Only supported for providers" in skipped[0].reason


def test_without_the_pattern_a_left_out_spec_is_a_plain_skip():
    """Without the not-applicable pattern a left-out pod spec is an ordinary skip, never hidden."""
    specs = results.parse_junit(RECORDED, focus="should mount an API token into pods", skip="")
    assert [s.outcome for s in specs if s.spec.startswith("[sig-")] == [results.SKIPPED]


def test_a_run_with_a_failure_or_without_a_pass_is_not_ok():
    passed = results.SpecResult("a", results.PASSED, 1.0)
    assert results.E2EResult([passed]).ok
    assert not results.E2EResult([passed, results.SpecResult("b", results.FAILED, 1.0, "x")]).ok
    assert not results.E2EResult([results.SpecResult("c", results.NOT_APPLICABLE, 0.0)]).ok
    assert not results.E2EResult([]).ok


def test_json_junit_and_table_carry_every_spec(tmp_path):
    specs = results.parse_junit(
        RECORDED,
        focus=DEFAULT_FOCUS,
        skip=default_skip(),
        not_applicable=POD_SPECS,
        not_applicable_reason="n",
    )
    result = results.E2EResult(specs, provider="local", seconds=12.5)
    data = json.loads(results.write_json(result, tmp_path / "r.json").read_text())
    assert data["summary"] == {"passed": 5, "failed": 2, "skipped": 1, "not-applicable": 5}
    written = results.write_junit(result, tmp_path / "r.xml")
    suite = ET.parse(written).getroot().find("testsuite")  # noqa: S314 - written by the line above
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("13", "2", "6")
    table = results.summary_table(specs)
    assert len(table.splitlines()) == 2 + len(specs)
    assert "not-applicable" in table


def test_default_selection_skips_slow_serial_disruptive_and_off_by_default():
    assert re.search(default_skip(), "[sig-auth] x [Slow]")
    assert not re.search(default_skip(slow=True), "[sig-auth] x [Slow]")
    for tag in ("[Serial]", "[Disruptive]", "[Feature:OffByDefault]"):
        assert re.search(default_skip(slow=True), f"x {tag}")
    for name in (
        "ServiceAccounts x",
        "NodeAuthenticator x",
        "x TokenReview",
        "ServiceAccountIssuerDiscovery",
    ):
        assert re.search(DEFAULT_FOCUS, name)


def test_clusters_without_nodes_leave_the_pod_specs_out(tmp_path):
    binaries = build.E2EBinaries(tmp_path / "e2e.test", tmp_path / "kubectl", tmp_path / "agnhost", "1.37.2")
    info = ClusterInfo("local", tmp_path / "kc", Capabilities(runs_pods=False))
    argv = e2e_argv(binaries, info, RunOptions(skip=default_skip(), report_dir=tmp_path, runs_pods=False))
    assert f"--ginkgo.skip={default_skip()}|{POD_SPECS}" in argv
    assert f"--kubectl-path={tmp_path / 'kubectl'}" in argv
    with_node = e2e_argv(binaries, info, RunOptions(skip="", report_dir=tmp_path, runs_pods=True))
    assert not any(a.startswith("--ginkgo.skip") for a in with_node)


def test_bad_regex_and_unknown_version_are_clear_errors():
    with pytest.raises(K8sSAError, match="not a valid regular expression"):
        validate_regex("([", "--focus")
    with pytest.raises(BuildError, match=r"no pinned e2e module for Kubernetes v1\.36\.9"):
        build.e2e_module("1.36.9")


def test_usage_errors_exit_2_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_k8s_sa.cli", "upstream-e2e", "--k8s-provider", "kubeconfig"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "pass --kubeconfig PATH" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_local_runs_api_specs_and_reports_pod_specs_not_applicable(tmp_path):
    """End to end on `local`: one API-only spec passes, one pod spec is not applicable, exit 0."""
    try:
        build.find_e2e_binaries(build=False)
    except BuildError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the e2e binary is not built ({exc}); `k8s-sa upstream-e2e --build-only` builds it")
    focus = "should guarantee kube-root-ca.crt exist in any namespace|should mount an API token into pods"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_k8s_sa.cli",
            "upstream-e2e",
            "--k8s-provider",
            "local",
            "--focus",
            focus,
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "upstream-e2e.json").read_text())
    outcomes = {s["spec"]: s["outcome"] for s in report["specs"]}
    assert outcomes == {
        f"{SA} should guarantee kube-root-ca.crt exist in any namespace [Conformance]": "passed",
        f"{SA} should mount an API token into pods [Conformance]": "not-applicable",
    }
    assert report["provider"] == "local"
    assert report["server_version"].startswith("v1.")
    assert "not-applicable" in proc.stdout
    assert (tmp_path / "upstream-e2e-junit.xml").is_file()
    assert (tmp_path / "e2e.log").stat().st_size > 0


PASSING_JUNIT = (
    '<testsuites><testsuite name="s"><testcase name="[It] [sig-auth] ServiceAccounts should guarantee '
    'kube-root-ca.crt exist in any namespace [Conformance]" status="passed" time="1.0"/>'
    "</testsuite></testsuites>"
)


def test_a_nonzero_exit_without_a_failed_spec_is_still_a_failure(tmp_path):
    """Ginkgo can fail a run (timeout, interrupt) with every reported spec green: never a green run."""
    fake = tmp_path / "e2e.test"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "report = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--report-dir=')][0]\n"
        f"open(report + '/junit_01.xml', 'w').write({PASSING_JUNIT!r})\n"
        "print('• [1.0 seconds]')\n"
        "sys.exit(1)\n"
    )
    fake.chmod(0o755)
    binaries = build.E2EBinaries(fake, tmp_path / "kubectl", tmp_path / "agnhost", "1.37.2")
    info = ClusterInfo("local", tmp_path / "kc", Capabilities(runs_pods=True))
    focus = "kube-root-ca.crt"
    options = RunOptions(focus=focus, skip="", report_dir=tmp_path / "r")
    result = run_specs(binaries, info, options, progress=lambda _m: None)
    assert [s.outcome for s in result.specs] == [results.PASSED, results.FAILED]
    assert result.specs[-1].reason.startswith("the e2e binary exited 1")
    assert not result.ok
