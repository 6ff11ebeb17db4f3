"""Where the python image's Debian packages come from: the machine's own apt sources, or an option.

No package host is named in this project's code. By default the image is built from the entries of
this machine's apt configuration (``Dir::Etc::sourcelist`` and ``Dir::Etc::sourceparts``, one-line
and deb822 files alike) that serve the image's Debian suite (``bookworm``, ``bookworm-updates``,
``bookworm-security``) with the ``main`` component; other repositories the machine has configured
(vendors' archives) are left out. Users behind their own mirror, or on a machine without Debian
sources, name one with ``--k8s-apt-mirror`` / ini ``k8s_sa_apt_mirror`` / ``$K8S_SA_APT_MIRROR``:
a mirror URI, a one-line ``deb ...`` entry, or a sources file; it is handed to mmdebstrap as its
MIRROR argument unchanged.

The sources are part of the image's cache key (:attr:`AptSources.key`): another mirror, another image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .host import NodeError

APT_MIRROR_ENV = "K8S_SA_APT_MIRROR"
"""The environment variable of ``--k8s-apt-mirror``; honoured by the library too."""

_ONE_LINE_OPTIONS = {"arch": "Architectures", "lang": "Languages", "target": "Targets"}
"""One-line option names whose deb822 field has another name (the rest only differ in case)."""

_DEFAULT_LIST = Path("/etc/apt/sources.list")
_DEFAULT_PARTS = Path("/etc/apt/sources.list.d")


@dataclass(frozen=True)
class Stanza:
    """One apt source in deb822 form: ``fields`` maps field names to their raw (maybe multi-line) text."""

    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str:
        for key, value in self.fields:
            if key.lower() == name.lower():
                return value
        return ""

    def words(self, name: str) -> list[str]:
        return self.get(name).split()

    def replaced(self, **values: str) -> Stanza:
        names = {name.lower(): value for name, value in values.items()}
        return Stanza(tuple((k, names.get(k.lower(), v)) for k, v in self.fields))

    def render(self) -> str:
        return "".join(f"{key}: {value}\n" for key, value in self.fields)


@dataclass(frozen=True)
class AptSources:
    """What mmdebstrap is given after the suite and target: ``args``, plus files to write first."""

    args: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    """(file name, content): written into the build folder, named in ``args`` by that name."""
    description: str
    key: str

    def mirror_args(self, directory: Path) -> list[str]:
        """mmdebstrap's MIRROR arguments, writing the sources files they name into ``directory``."""
        written = {}
        for name, content in self.files:
            written[name] = directory / name
            written[name].write_text(content)
        return [str(written.get(arg, arg)) for arg in self.args]


def parse_one_line(text: str) -> list[Stanza]:
    """``deb [opt=value ...] URI SUITE [COMPONENT ...]`` lines as stanzas (comments ignored)."""
    stanzas = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        fields: list[tuple[str, str]] = [("Types", kind)]
        rest = rest.strip()
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
            for option in options.split():
                name, _, value = option.partition("=")
                fields.append((_ONE_LINE_OPTIONS.get(name.lower(), name), value.replace(",", " ")))
        parts = rest.split()
        if len(parts) < 2:
            continue
        fields[1:1] = [("URIs", parts[0]), ("Suites", parts[1]), ("Components", " ".join(parts[2:]))]
        stanzas.append(Stanza(tuple(fields)))
    return stanzas


def parse_deb822(text: str) -> list[Stanza]:
    """deb822 ``.sources`` stanzas; continuation lines (embedded keys) are kept as they are."""
    stanzas: list[Stanza] = []
    fields: list[tuple[str, str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append(Stanza(tuple(fields)))
                fields = []
            continue
        if line[0] in " \t" and fields:
            key, value = fields[-1]
            fields[-1] = (key, f"{value}\n{line}")
            continue
        key, _, value = line.partition(":")
        fields.append((key.strip(), value.strip()))
    return [s for s in stanzas if s.get("Enabled").lower() not in ("no", "false", "0")]


def source_files() -> list[Path]:
    """This machine's apt source files, where apt itself looks for them (``apt-config``)."""
    sources_list, parts = _DEFAULT_LIST, _DEFAULT_PARTS
    apt_config = shutil.which("apt-config")
    if apt_config:
        out = subprocess.run(
            [apt_config, "shell", "SL", "Dir::Etc::sourcelist/f", "SP", "Dir::Etc::sourceparts/d"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        sources_list = Path(values.get("SL", "").strip("'") or sources_list)
        parts = Path(values.get("SP", "").strip("'") or parts)
    files = [sources_list] if sources_list.is_file() else []
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    return files


def read_stanzas(files: Iterable[Path]) -> list[Stanza]:
    stanzas = []
    for path in files:
        text = path.read_text(errors="replace")
        stanzas += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)
    return stanzas


def for_suite(stanzas: Iterable[Stanza], suite: str) -> list[Stanza]:
    """The binary (``deb``) sources of ``suite`` and its ``-updates``/``-security`` suites with ``main``."""
    kept = []
    for stanza in stanzas:
        suites = [s for s in stanza.words("Suites") if s == suite or s.startswith(f"{suite}-")]
        if "deb" not in stanza.words("Types") or not suites or "main" not in stanza.words("Components"):
            continue
        kept.append(stanza.replaced(Types="deb", Suites=" ".join(suites)))
    return kept


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def resolve(suite: str, mirror: str | None = None, files: Iterable[Path] | None = None) -> AptSources:
    """The sources for an image of ``suite``: ``mirror`` (else ``$K8S_SA_APT_MIRROR``) or the machine's."""
    mirror = mirror if mirror is not None else os.environ.get(APT_MIRROR_ENV) or None
    hint = (
        f"name a mirror with --k8s-apt-mirror, ini k8s_sa_apt_mirror or ${APT_MIRROR_ENV} "
        "(a URI, a one-line 'deb ...' entry or an apt sources file)"
    )
    if mirror:
        mirror = mirror.strip()
        if "://" in mirror or mirror.startswith("deb "):
            return AptSources((mirror,), (), f"mirror {mirror}", _digest("mirror", suite, mirror))
        path = Path(mirror).expanduser()
        if not path.is_file():
            raise NodeError(f"apt mirror {mirror!r} is neither a URI, a 'deb ...' entry nor a file: {hint}")
        content = path.read_text(errors="replace")
        return AptSources((str(path.resolve()),), (), f"sources file {path}", _digest("file", suite, content))
    searched = list(source_files() if files is None else files)
    stanzas = for_suite(read_stanzas(searched), suite)
    if not stanzas:
        where = ", ".join(str(p) for p in searched) or "no apt source files found"
        raise NodeError(
            f"this machine's apt sources ({where}) have no 'deb' entry for Debian {suite} with 'main', "
            f"which the python image is built from: {hint}"
        )
    content = "\n".join(stanza.render() for stanza in stanzas)
    return AptSources(
        ("machine.sources",),
        (("machine.sources", content),),
        "this machine's apt sources",
        _digest("machine", suite, content),
    )
