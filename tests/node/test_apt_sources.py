"""The python image's packages come from this machine's apt sources or the option, never from a host
named in the code. No root needed: the sources are parsed and resolved, nothing is built."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pytest_k8s_sa.components.node import aptsources, images
from pytest_k8s_sa.components.node.host import NodeError

ROOT = Path(__file__).resolve().parents[2]

ONE_LINE = """\
# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/a.gpg] http://mirror.test/debian bookworm main contrib
deb-src http://mirror.test/debian bookworm main
deb http://mirror.test/debian bookworm-updates main  # trailing comment
deb http://vendor.test/apt stable main
deb http://mirror.test/debian trixie main
"""

DEB822 = """\
Types: deb deb-src
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: http://mirror.test/disabled
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://vendor.test/apt
Suites: bookworm
Components: stable
"""


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "extra.sources").write_text(DEB822)
    return [tmp_path / "sources.list", tmp_path / "extra.sources"]


def test_the_machines_debian_entries_for_the_suite_are_kept(sources, monkeypatch):
    monkeypatch.delenv(aptsources.APT_MIRROR_ENV, raising=False)
    resolved = aptsources.resolve("bookworm", files=sources)
    name, content = resolved.files[0]
    assert resolved.args == (name,)
    stanzas = aptsources.parse_deb822(content)
    assert [(s.get("URIs"), s.get("Suites")) for s in stanzas] == [
        ("http://mirror.test/debian", "bookworm"),
        ("http://mirror.test/debian", "bookworm-updates"),
        ("http://mirror.test/debian-security", "bookworm-security"),
    ]
    assert {s.get("Types") for s in stanzas} == {"deb"}
    assert stanzas[0].get("Architectures") == "amd64"
    assert stanzas[0].get("Signed-By") == "/usr/share/keyrings/a.gpg"
    assert "BEGIN PGP PUBLIC KEY BLOCK" in stanzas[2].get("Signed-By")  # embedded key kept whole


def test_the_option_wins_and_changes_the_cache_key(sources, monkeypatch, tmp_path):
    monkeypatch.delenv(aptsources.APT_MIRROR_ENV, raising=False)
    machine = aptsources.resolve("bookworm", files=sources)
    uri = aptsources.resolve("bookworm", "http://other.test/debian", files=sources)
    assert uri.args == ("http://other.test/debian",)
    assert uri.files == ()
    monkeypatch.setenv(aptsources.APT_MIRROR_ENV, "deb http://env.test/debian bookworm main")
    from_env = aptsources.resolve("bookworm", files=sources)
    assert from_env.args == ("deb http://env.test/debian bookworm main",)
    own = tmp_path / "own.sources"
    own.write_text(DEB822)
    from_file = aptsources.resolve("bookworm", str(own), files=sources)
    assert from_file.args == (str(own),)
    assert len({machine.key, uri.key, from_env.key, from_file.key}) == 4
    own.write_text(DEB822.replace("debian-security", "debian-sec"))
    assert aptsources.resolve("bookworm", str(own)).key != from_file.key


def test_no_debian_entry_says_how_to_name_a_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(aptsources.APT_MIRROR_ENV, raising=False)
    only_vendor = tmp_path / "vendor.list"
    only_vendor.write_text("deb http://vendor.test/apt stable main\n")
    with pytest.raises(NodeError, match="--k8s-apt-mirror") as error:
        aptsources.resolve("bookworm", files=[only_vendor])
    assert str(only_vendor) in str(error.value)
    with pytest.raises(NodeError, match="neither a URI"):
        aptsources.resolve("bookworm", str(tmp_path / "missing.list"))


def test_this_machines_own_sources_are_found():
    files = aptsources.source_files()
    if not files:
        pytest.skip("this machine has no apt sources (not Debian-like)")
    assert all(path.is_file() for path in files)


def test_python_image_hands_the_sources_to_mmdebstrap(tmp_path, monkeypatch):
    """The build gets the option's mirror as mmdebstrap's MIRROR argument, and nothing else."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    seen: list[tuple[str, ...]] = []

    def fake_mmdebstrap(*argv: str, **_: object) -> str:
        seen.append(argv)
        Path(argv[argv.index("bookworm") + 1]).write_bytes(b"")
        return ""

    path = images.python_image(
        fake_mmdebstrap,  # type: ignore[arg-type]  # a function in place of Runner.__call__
        progress=lambda _: None,
        apt_mirror="http://other.test/debian",
    )
    assert seen[0][-2:] == (seen[0][-2], "http://other.test/debian")
    assert path.name.startswith("python-bookworm-")
    other = images.python_image(
        fake_mmdebstrap,  # type: ignore[arg-type]  # a function in place of Runner.__call__
        progress=lambda _: None,
        apt_mirror="http://third.test/d",
    )
    assert other != path
    assert len(seen) == 2


ALLOWED_HOSTS = re.compile(
    r"^(127\.0\.0\.1|localhost|host|kubernetes|.*[{$].*|[\w.-]+\.svc(\.cluster\.local)?"
    r"|[\w.-]+\.(test|invalid|example))$"
)
"""Loopback, a placeholder (``{...}``, ``${...}``), a Service name (``kubernetes``: the API's own Service,
as a pod resolves it), or a reserved domain (RFC 2606)."""

READ_ONLY_REFERENCES = {
    # What the check catalogue cites for people to read (`references:` in checks.yaml, shown in the
    # reports as links): documentation, specifications, advisories; never fetched, never a package host.
    "kubernetes.io",
    "github.com",
    "openid.net",
    "datatracker.ietf.org",
    "www.rfc-editor.org",
    "nvd.nist.gov",
    "cwe.mitre.org",
    "cheatsheetseries.owasp.org",
    "developer.hashicorp.com",
    # Identifiers, not addresses: the JSON Schema dialect and the SVG namespace.
    "json-schema.org",
    "www.w3.org",
}
"""Hosts allowed only in the catalogue, the report schema and the report's SVG (nowhere else)."""
REFERENCE_FILES = ("catalogue/checks.yaml", "report/report-v3.schema.json", "report/timeline.py")


def test_no_package_host_is_named_in_the_code():
    """Every URL in the package, suites, benchmarks, CI and fixtures points at this machine, the
    cluster or a placeholder; where packages come from is the machine's own configuration."""
    places = [ROOT / "pytest_k8s_sa", ROOT / "suites", ROOT / "benchmarks", ROOT / "fixtures", ROOT / ".ci"]
    files = [p for place in places if place.exists() for p in place.rglob("*") if p.is_file()]
    files += [ROOT / "noxfile.py", ROOT / "pyproject.toml"]
    outside = []
    for path in files:
        if path.suffix in (".sum", ".tar", ".pyc") or "__pycache__" in path.parts:
            continue
        for match in re.finditer(r"[a-z][a-z0-9+.-]*://([^/\s\"'`)]+)", path.read_text(errors="replace")):
            host = match.group(1).rsplit("@", 1)[-1].rsplit(":", 1)[0]
            cited = host in READ_ONLY_REFERENCES and path.as_posix().endswith(REFERENCE_FILES)
            if not ALLOWED_HOSTS.match(host) and not cited:
                outside.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert outside == []
