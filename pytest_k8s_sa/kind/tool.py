"""The ``kind`` binary: found on PATH, or built from its Go module and cached like the other binaries.

No release binary can be downloaded here (pytest-kind would try), so ``sigs.k8s.io/kind`` is
built through the pinned wrapper module ``gobuild/kind-<version>`` into
``~/.cache/pytest-k8s-sa/node/kind-<version>-<digest>/kind`` (about 20 s cold).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..components.binaries import ComponentSet, GoTool, Progress, build_component_set, stderr_progress

KIND_VERSION = "v0.33.0"
"""The kind release whose Go module the project builds (it knows kubeadm's v1beta4 config)."""

KIND_SET = ComponentSet(f"kind-{KIND_VERSION}", f"kind-{KIND_VERSION}", (GoTool("kind", "sigs.k8s.io/kind"),))


def build_kind(*, progress: Progress = stderr_progress, force: bool = False) -> Path:
    """Build (once) and return the project's ``kind`` binary."""
    return build_component_set(KIND_SET, progress=progress, force=force) / "kind"


def find_kind(explicit: str | None = None, *, progress: Progress = stderr_progress) -> Path:
    """``explicit`` (``--kind-bin``) > ``kind`` on PATH > the project's build (built on first use)."""
    if explicit:
        return Path(explicit)
    on_path = shutil.which("kind")
    if on_path:
        return Path(on_path)
    return build_kind(progress=progress)
