"""Finding what a run left behind: processes that name a folder (shared by the teardown tests)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path


def processes_mentioning(text: str) -> list[str]:
    """Processes, not pytest itself, whose command line or environment names ``text``: every
    control-plane component has its data, certificate and log paths in its run's folder, every
    workload its token paths."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "-mpytest" in argv or any(pair == ("-m", "pytest") for pair in itertools.pairwise(argv)):
            continue  # pytest itself (inner runs), not what it started
        cmdline = " ".join(argv)
        if text in cmdline or text in environ:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found
