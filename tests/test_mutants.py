"""Proof that the conformance suite fails broken implementations (mutation testing of the suite).

Every folder of ``tests/mutants/`` holds one small program that imports a reference workload and
breaks one thing (see its docstring), and the SUT file that runs it. For each, the suite runs as a
plain subprocess, exactly as a user would run it::

    pytest suites --sut tests/mutants/<name>/sut.yaml --conformance-report R --conformance-profile fast

on the local provider, and the run must fail (exit 1) by exactly the ``must`` checks listed in
:data:`CAUGHT_BY` (``should`` checks that also fail are shown in the failure message, not asserted).
A mutant that breaks only a ``should`` (:data:`SHOULD_CAUGHT_BY`) must leave the exit code 0, fail
no ``must`` check and fail exactly those ``should`` checks. Mutants whose checks are in the ``full``
profile (the signing-key rotation, KEY-001..003) run ``--conformance-profile full`` on the modules
that hold them. ``tests/mutants/reference/sut.yaml`` runs the unchanged reference workloads the same
way, and ``tests/mutants/jwks_reference/sut.yaml`` the offline (``verification: jwks``) control the
``jwks_*`` mutants subclass: the controls, which must pass. A mutant that no check catches is a
missing check (suites/test_robustness.py holds those added so far). The README's table and
BENCHMARKS.md's mutation score come from this table.

Time: a fast-profile run takes about 20 s on a quiet machine (70 s under heavy load), so by default
each mutant's run selects only the suite modules that hold its expected checks (``pytest suites/x.py
...``): the verdict asserted is the same, a run is shorter. ``K8S_SA_MUTANTS_FULL=1`` runs the whole
fast profile for every mutant instead (the full profile, about 11 min, for the rotation mutants),
which proves that no *other* must check fails either (the table is exact); BENCHMARKS.md records
such a run.

Why plain subprocesses: the inner run uses the kubernetes client, whose lazily imported models do not
survive pytester's module restore; and a subprocess is what a user runs. Each inner run starts its own
local control plane, so the cases are independent and spread over xdist workers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_k8s_sa.catalogue import load as load_catalogue
from pytest_k8s_sa.sut.model import OTHER_AUDIENCES

REPO = Path(__file__).resolve().parents[1]
MUTANTS = REPO / "tests" / "mutants"
SUITES = REPO / "suites"
RUN_TIMEOUT_SECONDS = 900
FULL = os.environ.get("K8S_SA_MUTANTS_FULL", "") not in ("", "0")

NOT_DEPLOYED = "*"
"""In place of check ids: the mutant never grants the allowed caller's own token, so the SUT does not
even deploy ("[k8s-sa] the system under test did not deploy") and every check fails."""

CAUGHT_BY: dict[str, set[str]] = {
    # mutant folder: the `must` checks that fail against it (full fast profile, local provider)
    "no_audience": {NOT_DEPLOYED},
    "audience_from_token": {"AUD-001", "LEG-003"},
    "no_review": {
        "AUD-001",
        "CACHE-001",
        "EXP-003",
        "LEG-003",
        "RBAC-001",
        # REV-002..005 too: the revocation checks ask the callee with every revoked token (pod,
        # service account, Secret), and it grants each of them until exp.
        "REV-001",
        "REV-002",
        "REV-003",
        "REV-004",
        "REV-005",
        "SEC-001",
        "SEC-002",
        "SEC-003",
        "SEC-004",
        "SEC-005",
        "SEC-006",
        # Not SEC-011: it never calls its API, so no byte passes the cut during a normal verdict and
        # the fail-closed checks skip (there is no API dependency to judge), as they must.
    },
    "no_allow_list": {
        "AUD-003",
        "ALLOW-001",
        "ALLOW-002",
        "ALLOW-003",
        "ALLOW-004",
        "ALLOW-005",
        "ALLOW-006",
    },
    # The allowed name in another namespace, also `x<ns>:<name>` and `<part of ns>:<name>`.
    "allow_list_name_only": {"ALLOW-001", "ALLOW-004", "ALLOW-005"},
    # Matching that is not equality: each grants a look-alike of the allowed `namespace:name`.
    "allow_list_prefix": {"ALLOW-003"},  # `<ns>:<name>-x` starts with `<ns>:<name>`
    "allow_list_suffix": {"ALLOW-004"},  # `x<ns>:<name>` ends with it
    "allow_list_substring": {"ALLOW-003", "ALLOW-004"},  # both contain it
    "allow_list_unanchored_pattern": {"ALLOW-003", "ALLOW-006"},  # re.match(entry, user): a prefix, and `.`
    "allow_list_pattern": {"ALLOW-006"},  # re.fullmatch(entry, user): `<ns>:caller-v1` for `<ns>:caller.v1`
    "allow_list_in_raw_string": {"ALLOW-005"},  # `<ns>:<part of name>` is in the allow-list's text
    "grant_on_review_failure": {"CACHE-001", "RBAC-001", "SEC-011"},
    "caches_failures": {"CACHE-001"},
    # Every revoked token it granted before the deletion stays cached, recreated objects or not.
    "caches_successes_forever": {"REV-001", "REV-002", "REV-003", "REV-004", "REV-005"},
    "server_error_is_authenticated": {"SEC-011"},
    "header_case_sensitive": {"HDR-001"},
    "logs_token": {"LOG-001"},
    "caller_reads_token_once": {"ROT-001", "ROT-002"},
    "caller_reads_token_non_atomically": {"ROT-001", "ROT-002"},
    "single_threaded": {"AVAIL-001"},
    # Hangs while its API hangs (SEC-013, a `should`, fails too: no 503 within 15 s).
    "no_review_timeout": {"AVAIL-002"},
    "trusts_authenticated_alone": {"SEC-014"},
    # verification: jwks (subclasses of tests/mutants/jwks_reference's OfflineStore)
    # Never refetches: the new key is never known (KEY-001), the retired one never dropped (KEY-003).
    "jwks_fetches_once": {"KEY-001", "KEY-003"},
    "jwks_keeps_retired_keys": {"KEY-003"},  # the union of every key set it fetched
    "jwks_issuer_unchecked": {"SEC-004"},
    "jwks_fails_open": {"SEC-011"},  # unverified claims granted while the key set is unreachable
    "jwks_trusts_jku": {"KEY-005"},  # the key set a token's `jku` names verifies it
}
SHOULD_CAUGHT_BY: dict[str, set[str]] = {
    # mutant folder: the `should` checks that fail against it (no `must` check fails, exit code 0)
    "jwks_refetch_per_unknown_kid": {"KEY-004"},  # a key-set fetch per unknown kid (no cooldown)
}
CONTROLS = ("reference", "jwks_reference")
CONTROL = "reference"


def mutant_folders() -> list[str]:
    return sorted(p.name for p in MUTANTS.iterdir() if (p / "sut.yaml").is_file() and p.name not in CONTROLS)


def profile_of(check_ids: set[str]) -> str:
    """``full`` when any of ``check_ids`` runs only in the full profile (the key rotation), else ``fast``."""
    entries = [load_catalogue().get(i) for i in check_ids]
    return "full" if any(e is not None and e.profile == "full" for e in entries) else "fast"


def modules_of(check_ids: set[str]) -> list[str]:
    """The suite modules that define ``check_ids`` (found by their conformance markers)."""
    found = {}
    for module in sorted(SUITES.glob("test_*.py")):
        for check_id in re.findall(r'conformance\(\s*"([A-Z0-9-]+)"', module.read_text()):
            found[check_id] = f"suites/{module.name}"
    missing = check_ids - set(found)
    assert not missing, f"no suite module defines {sorted(missing)}"
    return sorted({found[i] for i in check_ids})


def run_suite(
    sut: Path, report: Path, paths: list[str] | None = None, profile: str = "fast"
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``pytest suites --sut SUT`` (or only ``paths``) in a subprocess; the process and its JSON report."""
    # The inner run is a run of its own: not an xdist worker of ours, no inherited pytest settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "K8S_SA_"))}
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(paths or ["suites"]),
        "--sut",
        str(sut),
        "--k8s-provider",
        "local",
        "--conformance-profile",
        profile,
        "--conformance-report",
        str(report),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        "--basetemp",
        str(report.parent / "basetemp"),
    ]
    proc = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    doc = json.loads(report.read_text()) if report.is_file() else {}
    return proc, doc


def failed_ids(doc: dict[str, Any], level: str = "must") -> set[str]:
    """The checks of ``level`` that failed (``must`` ones fail the gate; ``should`` ones are reported)."""
    return {
        c["id"] for c in doc.get("checks", []) if c["outcome"] == "failed" and c.get("level", "must") == level
    }


def explain(proc: subprocess.CompletedProcess[str], doc: dict[str, Any]) -> str:
    failures = {
        f"{c['id']} ({c.get('level', 'must')})": c["message"]
        for c in doc.get("checks", [])
        if c["outcome"] == "failed"
    }
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    return (
        f"exit {proc.returncode}; failed checks {json.dumps(failures, indent=1)}\n--- output tail ---\n{tail}"
    )


def test_the_catalogue_is_complete() -> None:
    """Every mutant folder has an expected verdict, and the catalogue has at least 12 mutants."""
    assert set(mutant_folders()) == set(CAUGHT_BY) | set(SHOULD_CAUGHT_BY)
    assert not set(CAUGHT_BY) & set(SHOULD_CAUGHT_BY)
    assert len(CAUGHT_BY) >= 12
    assert all(CAUGHT_BY.values()), "a mutant no check catches is a missing check: add one"
    assert all(SHOULD_CAUGHT_BY.values()), "a mutant no check catches is a missing check: add one"


def test_every_expected_check_exists_at_its_level() -> None:
    modules_of(set().union(*CAUGHT_BY.values(), *SHOULD_CAUGHT_BY.values()) - {NOT_DEPLOYED})
    by_id = load_catalogue().by_id
    assert {by_id[i].level for i in set().union(*CAUGHT_BY.values()) - {NOT_DEPLOYED}} == {"must"}
    assert {by_id[i].level for i in set().union(*SHOULD_CAUGHT_BY.values())} == {"should"}


def test_the_readme_table_matches() -> None:
    """The README's table (mutant, caught by) is this table, so the documentation cannot drift."""
    readme = (REPO / "README.md").read_text()
    readme = readme[readme.index("### Mutants") :]
    readme = readme[: readme.index("\n### ", 1)]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", readme, flags=re.M))
    should = "(`should`)"
    table = {
        name: {NOT_DEPLOYED}
        if "does not deploy" in cell
        else set(cell.replace(should, "").replace(" ", "").split(","))
        for name, cell in rows.items()
    }
    assert {n: ids for n, ids in table.items() if should not in rows[n]} == CAUGHT_BY
    assert {n: ids for n, ids in table.items() if should in rows[n]} == SHOULD_CAUGHT_BY


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(CAUGHT_BY))
def test_the_suite_fails_the_mutant(mutant: str, tmp_path: Path) -> None:
    expected = CAUGHT_BY[mutant]
    profile = "fast"
    if expected == {NOT_DEPLOYED}:
        paths = None if FULL else ["suites/test_acceptance.py"]
    else:
        paths = None if FULL else modules_of(expected)
        profile = profile_of(expected)
    proc, doc = run_suite(MUTANTS / mutant / "sut.yaml", tmp_path / "report.json", paths, profile)
    assert doc, f"no report was written:\n{explain(proc, doc)}"
    assert proc.returncode == 1, f"the suite did not fail the mutant {mutant}:\n{explain(proc, doc)}"
    if expected == {NOT_DEPLOYED}:
        assert "[k8s-sa] the system under test did not" in proc.stdout, explain(proc, doc)
        assert doc["summary_by_level"]["must"]["passed"] == 0, explain(proc, doc)
        return
    assert failed_ids(doc) == expected, explain(proc, doc)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(SHOULD_CAUGHT_BY))
def test_the_suite_reports_the_should_mutant(mutant: str, tmp_path: Path) -> None:
    """A mutant that breaks only a `should`: reported as exactly those failed `should` checks, while
    the exit code stays 0 (no `must` check fails; `--conformance-strict` would make it 1)."""
    expected = SHOULD_CAUGHT_BY[mutant]
    paths = None if FULL else modules_of(expected)
    proc, doc = run_suite(
        MUTANTS / mutant / "sut.yaml", tmp_path / "report.json", paths, profile_of(expected)
    )
    assert doc, f"no report was written:\n{explain(proc, doc)}"
    assert proc.returncode == 0, explain(proc, doc)
    assert failed_ids(doc) == set(), explain(proc, doc)
    assert failed_ids(doc, "should") == expected, explain(proc, doc)


CONTROL_FINDINGS: dict[str, set[str]] = {
    # A correct offline verifier cannot see deleted objects: it grants a revoked token until its exp.
    # REV-006 (should) says so with the measured window; that finding is the point of the check.
    "jwks_reference": {"REV-006"},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("control", "profile", "paths"),
    [
        ("reference", "fast", None),
        ("jwks_reference", "fast", None),
        # The key rotation the jwks mutants are judged by (full profile, only its module).
        ("jwks_reference", "full", ["suites/test_keys.py"]),
    ],
)
def test_the_suite_passes_the_reference(
    control: str, profile: str, paths: list[str] | None, tmp_path: Path
) -> None:
    """The controls: the unchanged reference workloads, and the offline (jwks) control the jwks
    mutants subclass, run through a SUT file the same way, pass every `must` check; their `should`
    findings are exactly :data:`CONTROL_FINDINGS`."""
    proc, doc = run_suite(MUTANTS / control / "sut.yaml", tmp_path / "report.json", paths, profile)
    assert doc, f"no report was written:\n{explain(proc, doc)}"
    assert proc.returncode == 0, explain(proc, doc)
    assert failed_ids(doc) == set(), explain(proc, doc)
    expected = CONTROL_FINDINGS.get(control, set()) if profile == "fast" and paths is None else set()
    assert failed_ids(doc, "should") == expected, explain(proc, doc)
    assert doc["summary"]["passed"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("audience", ["data-store"])
def test_a_callee_whose_audience_is_one_the_suite_invents_is_judged_for_the_audience(
    audience: str, tmp_path: Path
) -> None:
    """The mutant without an allow-list, its callee's audience set to one the audience checks present as
    *another* audience (``sut.OTHER_AUDIENCES``): those checks pick a different one, so AUD-002 and
    AUD-004 pass and only the allow-list check AUD-003 fails. (With the literal ``data-store``, AUD-002
    presented a token valid for the callee's own audience and failed for the missing allow-list.)"""
    assert audience in OTHER_AUDIENCES
    folder = MUTANTS / "no_allow_list"
    doc = yaml.safe_load((folder / "sut.yaml").read_text())
    doc["callee"]["audience"] = audience
    doc["callee"]["command"] = ["${PYTHON}", str(folder / "store.py")]
    doc["caller"]["command"] = ["${PYTHON}", str(MUTANTS / CONTROL / "api.py")]
    sut_file = tmp_path / "sut.yaml"
    sut_file.write_text(yaml.safe_dump(doc))
    proc, report = run_suite(sut_file, tmp_path / "report.json", ["suites/test_audience.py"])
    assert report, f"no report was written:\n{explain(proc, report)}"
    outcomes = {c["id"]: c["outcome"] for c in report["checks"]}
    assert outcomes["AUD-003"] == "failed", explain(proc, report)
    assert (outcomes["AUD-002"], outcomes["AUD-004"]) == ("passed", "passed"), explain(proc, report)
