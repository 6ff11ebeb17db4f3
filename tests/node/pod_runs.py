"""The inner run of the node tests: ``pytest suites --k8s-provider local-node --sut SUT`` as a plain
subprocess (the kubernetes client does not survive pytester; a subprocess is what a user runs).

Each inner run starts its own node and, since there is one node per machine, first waits for
whoever holds the node lock (``--k8s-node-wait``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODE_LOCK_WAIT_SECONDS = 900
RUN_TIMEOUT_SECONDS = 1500


def run_suite_on_node(
    sut: Path, tmp_path: Path, paths: Sequence[str] | None = None, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """The inner run, its report at ``tmp_path/report.json``; ``extra``: more pytest options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "K8S_SA_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *(paths or [str(ROOT / "suites")]),
            "-p",
            "no:cacheprovider",
            "--k8s-provider",
            "local-node",
            # One node per machine: wait for whoever holds it, then start ours.
            "--k8s-node-wait",
            str(NODE_LOCK_WAIT_SECONDS),
            "--sut",
            str(sut),
            "--conformance-report",
            str(tmp_path / "report.json"),
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def run_on_node(
    sut: Path, tmp_path: Path, paths: Sequence[str] | None = None, extra: Sequence[str] = ()
) -> tuple[str, dict[str, Any]]:
    """:func:`run_suite_on_node`; its exit code and output's tail as one text, and its JSON report."""
    result = run_suite_on_node(sut, tmp_path, paths, extra)
    report = tmp_path / "report.json"
    output = f"exit {result.returncode}\n" + result.stdout[-8000:] + result.stderr[-2000:]
    return output, json.loads(report.read_text()) if report.is_file() else {}
