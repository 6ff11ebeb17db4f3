"""The check catalogue: what each conformance check demands, why, and what to fix when it fails.

The data lives in ``checks.yaml`` beside this module (shipped as package data); :func:`load` reads
and validates it once. The catalogue is the single source for ``k8s-sa checks``, the README's checks
table and the catalogue fields of the conformance report (requirement, why, sources, fix); the
markers in ``suites/`` keep their id, title, level and profile, and ``tests/test_catalogue.py`` fails
when a marker and its entry disagree, or when either lacks the other.

No pytest here: the CLI and the report writers use it too.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from ..base.errors import K8sSAError

LEVELS = ("must", "should")
PROFILES = ("fast", "full")
MODES = ("process", "pod")
VERIFICATIONS = ("tokenreview", "jwks")
ID_PATTERN = re.compile(r"^(?P<area>[A-Z]+)-\d{3}$")
REQUIRED = ("id", "title", "level", "profile", "modes", "requirement", "why", "sources", "fix")
OPTIONAL = ("verification", "not_applicable")
RFC2119 = re.compile(r"\b(MUST|MUST NOT|SHOULD|SHOULD NOT|SHALL|REQUIRED|MAY)\b")


class CatalogueError(K8sSAError):
    """The catalogue file is malformed: the message names the entry and the field."""


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url}


@dataclass(frozen=True)
class Entry:
    """One check as the catalogue describes it."""

    id: str
    title: str
    level: str
    profile: str
    modes: tuple[str, ...]
    verification: tuple[str, ...]
    requirement: str
    why: str
    sources: tuple[Source, ...]
    fix: str
    not_applicable: tuple[tuple[str, str], ...] = ()
    """For each verification mode outside ``verification``: why the check does not apply to such a
    callee, and what judges it instead (the report's reason)."""

    @property
    def area(self) -> str:
        return self.id.split("-", 1)[0]

    def applies_to(self, mode: str | None) -> bool:
        """Whether the check applies to a run in ``mode`` (None: unknown, so it applies)."""
        return mode is None or mode in self.modes

    def why_not_applicable(self, verification: str) -> str | None:
        """Why the check does not judge a callee of ``verification`` (None: it does)."""
        if verification in self.verification:
            return None
        reason = dict(self.not_applicable).get(verification)
        return reason or f"{self.id} judges callees that verify by {' or '.join(self.verification)}"

    def as_dict(self) -> dict[str, Any]:
        """The catalogue fields as the report and ``k8s-sa checks --format json`` carry them."""
        return {
            "id": self.id,
            "title": self.title,
            "area": self.area,
            "level": self.level,
            "profile": self.profile,
            "modes": list(self.modes),
            "verification": list(self.verification),
            "requirement": self.requirement,
            "why": self.why,
            "sources": [s.as_dict() for s in self.sources],
            "fix": self.fix,
            "not_applicable": dict(self.not_applicable),
        }


@dataclass(frozen=True)
class Catalogue:
    version: int
    areas: dict[str, str]
    entries: tuple[Entry, ...]

    def get(self, check_id: str) -> Entry | None:
        return self.by_id.get(check_id)

    @functools.cached_property
    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    def select(self, words: list[str]) -> list[Entry]:
        """Entries named by ids or areas (``SEC-003``, ``SEC``, ``rev``); unknown words are an error."""
        chosen: dict[str, Entry] = {}
        unknown = []
        for word in (w.strip().upper() for w in words if w.strip()):
            matched = [e for e in self.entries if word in (e.id, e.area)]
            if not matched:
                unknown.append(word)
            chosen.update((e.id, e) for e in matched)
        if unknown:
            raise CatalogueError(
                f"unknown check id or area: {', '.join(unknown)} (areas: {', '.join(sorted(self.areas))}; "
                "`k8s-sa checks` lists the ids)"
            )
        return sorted(chosen.values(), key=lambda e: e.id)


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: `{key}` must be a non-empty string")
    return value.strip()


def _choices(raw: Any, allowed: tuple[str, ...], key: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or any(v not in allowed for v in raw):
        allowed_words = ", ".join(allowed)
        raise CatalogueError(f"{where}: `{key}` must be a non-empty list of {allowed_words}; got {raw!r}")
    return tuple(raw)


def _entry(raw: Any, references: dict[str, Source], areas: dict[str, str], index: int) -> Entry:
    if not isinstance(raw, dict):
        raise CatalogueError(f"checks[{index}] must be a mapping, not {type(raw).__name__}")
    where = f"checks[{index}] ({raw.get('id', '?')})"
    missing = [k for k in REQUIRED if k not in raw]
    extra = sorted(set(raw) - {*REQUIRED, *OPTIONAL})
    if missing or extra:
        raise CatalogueError(f"{where}: missing {missing or 'nothing'}, unknown keys {extra or 'none'}")
    check_id = _text(raw, "id", where)
    matched = ID_PATTERN.match(check_id)
    if not matched or matched.group("area") not in areas:
        raise CatalogueError(f"{where}: id must be AREA-NNN with AREA one of {', '.join(sorted(areas))}")
    level, profile = _text(raw, "level", where), _text(raw, "profile", where)
    if level not in LEVELS or profile not in PROFILES:
        raise CatalogueError(f"{where}: level must be one of {LEVELS}, profile one of {PROFILES}")
    requirement = _text(raw, "requirement", where)
    if not RFC2119.search(requirement):
        raise CatalogueError(f"{where}: the requirement needs an RFC 2119 keyword (MUST, SHOULD, ...)")
    keys = raw["sources"]
    if not isinstance(keys, list) or not keys or any(k not in references for k in keys):
        raise CatalogueError(f"{where}: `sources` must list keys of `references`; got {keys!r}")
    verification = _choices(raw.get("verification", ["tokenreview"]), VERIFICATIONS, "verification", where)
    return Entry(
        id=check_id,
        title=_text(raw, "title", where),
        level=level,
        profile=profile,
        modes=_choices(raw["modes"], MODES, "modes", where),
        verification=verification,
        requirement=requirement,
        why=_text(raw, "why", where),
        sources=tuple(references[k] for k in keys),
        fix=_text(raw, "fix", where),
        not_applicable=_not_applicable(raw.get("not_applicable"), verification, where),
    )


def _not_applicable(raw: Any, verification: tuple[str, ...], where: str) -> tuple[tuple[str, str], ...]:
    """``not_applicable``: a reason for verification modes the check does not judge (only those; the
    shipped catalogue gives one for each, ``tests/test_catalogue.py`` makes sure)."""
    outside = [v for v in VERIFICATIONS if v not in verification]
    reasons = {} if raw is None else raw
    if not isinstance(reasons, dict) or any(mode not in outside for mode in reasons):
        raise CatalogueError(
            f"{where}: `not_applicable` maps verification modes the check does not judge "
            f"({', '.join(outside) or 'none'}) to a reason; got {raw!r}"
        )
    for mode, reason in reasons.items():
        if not isinstance(reason, str) or not reason.strip():
            raise CatalogueError(f"{where}: `not_applicable.{mode}` must be a non-empty string")
    return tuple((mode, str(reasons[mode]).strip()) for mode in outside if mode in reasons)


def parse(text: str) -> Catalogue:
    """A catalogue from YAML text; :class:`CatalogueError` says what is wrong and where."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"the check catalogue is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not {"version", "areas", "references", "checks"} <= set(doc):
        raise CatalogueError("the check catalogue needs the keys version, areas, references and checks")
    references = {}
    for key, ref in (doc["references"] or {}).items():
        linked = isinstance(ref, dict) and str(ref.get("url", "")).startswith("https://")
        if not linked or not ref.get("title"):
            raise CatalogueError(f"references.{key}: needs a title and an https url")
        references[key] = Source(key, str(ref["title"]), str(ref["url"]))
    areas = {str(k): str(v) for k, v in (doc["areas"] or {}).items()}
    entries = tuple(_entry(raw, references, areas, i) for i, raw in enumerate(doc["checks"] or []))
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise CatalogueError(f"check {entry.id} appears twice in the catalogue")
        seen.add(entry.id)
    return Catalogue(int(doc["version"]), areas, tuple(sorted(entries, key=lambda e: e.id)))


@functools.cache
def load() -> Catalogue:
    """The shipped catalogue (read once per process)."""
    return parse(resources.files(__package__).joinpath("checks.yaml").read_text(encoding="utf-8"))
