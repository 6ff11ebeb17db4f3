"""Pod mode of a SUT file on the local node: image archives loaded into the node, no registry.

The reference workloads, packed as two images (``tests/node/sut_images.py``), are judged the way a
team's images would be: ``--sut`` names the images and their archives, the suite loads the archives
into containerd, deploys Deployments with the callee's in-cluster credentials and the caller's
projected token volume, and runs the fast profile. Needs root on Linux (the local-node provider) and
waits for the machine's node lock if another run holds it. A plain subprocess (kubernetes client).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from pytest_k8s_sa.node.node import state_dir

from .sut_images import build

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        sys.platform != "linux" or os.geteuid() != 0, reason="the local-node provider needs root on Linux"
    ),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("runc", "mmdebstrap", "iptables", "conntrack")),
        reason="the local-node provider needs `apt-get install -y runc containernetworking-plugins iptables "
        "mmdebstrap conntrack` (.ci/run installs them before the project's tests)",
    ),
]


def test_the_fast_profile_judges_images_in_pod_mode(tmp_path):
    sut_file = build(tmp_path / "sut")
    # One node per machine: wait for whoever holds it (polling with a deadline), then start ours.
    lock = FileLock(str(state_dir() / "node.lock"))
    lock.acquire(timeout=900)
    lock.release()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "K8S_SA_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "suites"),
            "-p",
            "no:cacheprovider",
            "--k8s-provider",
            "local-node",
            "--sut",
            str(sut_file),
            "--conformance-report",
            str(tmp_path / "report.json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    by_id = {c["id"]: c for c in report["checks"]}
    assert report["provider"] == "local-node"
    assert by_id["ACC-001"]["outcome"] == "passed"
    assert by_id["ACC-001"]["fidelity"] == "real"
    assert by_id["RBAC-003"]["outcome"] == "passed"
    assert by_id["SEC-011"]["outcome"] == "skipped"  # the API cannot be cut for a pod
    assert report["summary_by_level"]["must"]["failed"] == 0
