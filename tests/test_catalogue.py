"""The check catalogue against the suite and the README, without a cluster.

* every ``@pytest.mark.conformance`` in ``suites/`` has a catalogue entry, every entry a marker, and
  the id, title, level and profile agree (the markers are read from the source, as written);
* the README's checks table is exactly ``k8s-sa checks --format markdown``;
* the loader refuses a malformed catalogue with a message naming the entry and the field.

A new check fails the first test until its entry is added to ``pytest_k8s_sa/catalogue/checks.yaml``
(the file's header says how), and then the README test until the table is pasted in.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_k8s_sa.catalogue import CatalogueError, load, parse
from pytest_k8s_sa.catalogue.render import README_BEGIN, README_END, markdown_table

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites"


def suite_markers() -> dict[str, dict[str, str]]:
    """``{id: {title, level, profile, where}}`` of every conformance marker in ``suites/``."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(SUITES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "conformance"
                and ast.unparse(node.func.value) == "pytest.mark"
            ):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            try:
                check_id, title = (ast.literal_eval(arg) for arg in node.args[:2])
                kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
            except ValueError:
                pytest.fail(f"{where}: the marker's id, title, level and profile must be literals")
            twice = f"{check_id} is marked twice: {found.get(check_id, {}).get('where')} and {where}"
            assert check_id not in found, twice
            found[check_id] = {
                "title": title,
                "level": kwargs.get("level", "must"),
                "profile": kwargs.get("profile", "fast"),
                "where": where,
            }
    return found


def test_every_marker_has_an_entry_and_every_entry_a_marker():
    markers, catalogue = suite_markers(), load()
    assert len(markers) > 40, "the marker scan found too few checks: is suites/ where it was?"
    missing = sorted(set(markers) - set(catalogue.by_id))
    orphans = sorted(set(catalogue.by_id) - set(markers))
    named = ", ".join(f"{i} ({markers[i]['where']})" for i in missing)
    assert not missing, (
        f"checks without a catalogue entry: {named}; "
        "add them to pytest_k8s_sa/catalogue/checks.yaml (its header says how)"
    )
    assert not orphans, f"catalogue entries without a check in suites/: {', '.join(orphans)}"


def test_markers_and_entries_agree():
    catalogue = load()
    differences = []
    for check_id, marker in sorted(suite_markers().items()):
        entry = catalogue.get(check_id)
        if entry is None:
            continue  # the test above names it
        for field in ("title", "level", "profile"):
            if marker[field] != getattr(entry, field):
                differences.append(
                    f"{check_id} {field}: marker ({marker['where']}) {marker[field]!r}, "
                    f"catalogue {getattr(entry, field)!r}"
                )
    assert not differences, "\n".join(differences)


def test_readme_checks_table_is_the_generated_one():
    text = (REPO / "README.md").read_text()
    assert README_BEGIN in text, "the README lost its checks-table markers"
    assert README_END in text, "the README lost its checks-table markers"
    inside = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n") + "\n"
    expected = markdown_table(list(load().entries))
    assert inside == expected, (
        "README's checks table differs from the catalogue: paste the output of "
        "`k8s-sa checks --format markdown` between its markers"
    )


def test_the_cli_prints_the_catalogue_in_every_format():
    run = [sys.executable, "-m", "pytest_k8s_sa.cli", "checks"]
    as_json = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, check=True)
    doc = json.loads(as_json.stdout)
    assert [c["id"] for c in doc["checks"]] == [e.id for e in load().entries]
    first = doc["checks"][0]
    assert {"requirement", "why", "sources", "fix", "modes"} <= set(first)
    assert first["sources"][0]["url"].startswith("https://")
    markdown = subprocess.run([*run, "--format", "markdown"], capture_output=True, text=True, check=True)
    assert markdown.stdout == markdown_table(list(load().entries))
    one = subprocess.run([*run, "sec-003"], capture_output=True, text=True, check=True)
    assert one.stdout.startswith("SEC-003 (must, fast profile")
    assert "CVE-2015-9235" in one.stdout
    area = subprocess.run([*run, "REV"], capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in area.stdout.splitlines()[1:]] == [f"REV-00{i}" for i in range(1, 7)]
    unknown = subprocess.run([*run, "NOPE-1"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 2
    assert "unknown check id or area: NOPE-1" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_every_entry_is_complete_and_its_sources_are_links():
    for entry in load().entries:
        assert entry.requirement.endswith("."), entry.id
        assert entry.sources, entry.id
        assert all(s.url.startswith("https://") for s in entry.sources), entry.id
    raw = yaml.safe_load((REPO / "pytest_k8s_sa" / "catalogue" / "checks.yaml").read_text())
    used = {key for check in raw["checks"] for key in check["sources"]}
    assert set(raw["references"]) == used, f"references no check cites: {set(raw['references']) - used}"
    assert set(raw["areas"]) == {e.area for e in load().entries}, (
        "an area without checks, or a check without area"
    )


GOOD = """
version: 1
areas: {X: demo}
references: {r: {title: a source, url: "https://example.org/"}}
checks:
  - {id: X-001, title: t, level: must, profile: fast, modes: [process], requirement: It MUST work.,
     why: w, sources: [r], fix: f}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("level: must", "level: may"), "level must be one of"),
        (("sources: [r]", "sources: [nope]"), "`sources` must list keys of `references`"),
        (("modes: [process]", "modes: [vm]"), "`modes` must be a non-empty list of process, pod"),
        (("It MUST work.", "It works."), "needs an RFC 2119 keyword"),
        (("id: X-001", "id: Y-001"), "id must be AREA-NNN"),
        (("fix: f}", "fix: f, colour: red}"), "unknown keys ['colour']"),
        (('url: "https://example.org/"', 'url: "http://example.org/"'), "needs a title and an https url"),
        (("checks:", "checks: ["), "not valid YAML"),
    ],
)
def test_a_malformed_catalogue_is_refused_with_a_clear_message(change, message):
    assert parse(GOOD).entries[0].id == "X-001"
    with pytest.raises(CatalogueError) as refused:
        parse(GOOD.replace(*change))
    assert message in str(refused.value)


def test_a_duplicate_id_is_refused():
    doubled = GOOD + GOOD.split("checks:\n", 1)[1]
    with pytest.raises(CatalogueError, match="X-001 appears twice"):
        parse(doubled)


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``k8s-sa checks | head``: the reader is gone when the catalogue is written; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first byte: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_k8s_sa.cli", "checks", "--format", "markdown"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    stderr = proc.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 141


def test_every_check_says_why_it_does_not_apply_to_a_verification_mode() -> None:
    """A check outside a callee's verification mode is reported not applicable with its own reason
    (what judges such a callee instead), never a generic one."""
    from pytest_k8s_sa.catalogue import VERIFICATIONS, load

    missing = [
        f"{entry.id}: {mode}"
        for entry in load().entries
        for mode in VERIFICATIONS
        if mode not in entry.verification and mode not in dict(entry.not_applicable)
    ]
    assert not missing
