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
