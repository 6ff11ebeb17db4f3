"""Where the library keeps things between runs: the binary cache and the process registry."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/pytest-k8s-sa``: built binaries, one folder per version."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-k8s-sa"


def registry_dir() -> Path:
    """Records of the processes this library started, for the sweep of crashed runs."""
    return cache_root() / "running"


PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""The installed package's folder (``pytest_k8s_sa/``; this module lives in ``base/``)."""


def shipped(installed: str, checkout: str) -> Path:
    """A folder shipped in the wheel as ``pytest_k8s_sa/<installed>`` and kept at ``<checkout>`` at the
    top of the repository: the installed copy if there is one, else the checkout's (editable installs)."""
    inside = PACKAGE_DIR / installed
    return inside if inside.is_dir() else PACKAGE_DIR.parent / checkout


def suite_dir() -> Path:
    """The conformance suite (``suites/``)."""
    return shipped("suites", "suites")


def manifests_dir() -> Path:
    """The reference workloads' templated manifests (``fixtures/manifests``)."""
    return shipped("manifests", "fixtures/manifests")
