"""The suite's overhead per system under test on local-node: `python benchmarks/sut_overhead.py`.

For each SUT file (default: the reference workloads as a built-in SUT in pod mode is covered by
``benchmarks/node.py``; here the Go example, built first with its own ``build.py``), one local node is
started, then the SUT is deployed ``--runs`` times through the same library call the suite uses
(``pytest_k8s_sa.deploy.sut_deploy.deploy_sut`` in pod mode: namespaces, service accounts, the auth-delegator
binding, the Service, the image archive loaded into the node, rollout, port-forward, first verdict)
and torn down again. Reported: deploy to first verdict, median and spread, in
``benchmarks/results/sut_overhead.json``. Linux and root (local-node).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy.sut_deploy import deploy_sut
from pytest_k8s_sa.providers.registry import build_provider
from pytest_k8s_sa.providers.settings import Settings
from pytest_k8s_sa.sut import model as sut_files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GO_EXAMPLE = ROOT / "examples" / "go-secret-store"


def measure(sut_path: Path, runs: int) -> dict[str, object]:
    sut = sut_files.load(sut_path)
    provider = build_provider("local-node", Settings(provider="local-node"))
    info = provider.create()
    samples: list[dict[str, float]] = []
    try:
        for _ in range(runs):
            cluster = Cluster(info, uuid.uuid4().hex[:8])
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as workdir:
                with deploy_sut(cluster, Names(cluster.run_id), Path(workdir), sut) as run:
                    timings = dict(run.deployment.timings)
                    timings["wall_to_first_verdict_seconds"] = round(time.perf_counter() - started, 2)
                timings["wall_with_teardown_seconds"] = round(time.perf_counter() - started, 2)
            samples.append(timings)
            cluster.close()
    finally:
        provider.destroy()
    keys = sorted({k for s in samples for k in s if isinstance(s[k], (int, float))})
    return {
        "sut": str(sut_path.relative_to(ROOT)),
        "runs": samples,
        "median": {k: round(statistics.median(s[k] for s in samples if k in s), 2) for k in keys},
        "min": {k: min(s[k] for s in samples if k in s) for k in keys},
        "max": {k: max(s[k] for s in samples if k in s) for k in keys},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sut", type=Path, action="append", help="SUT file(s); default: the Go example")
    args = parser.parse_args()
    suts = args.sut or [GO_EXAMPLE / "sut.yaml"]
    if not args.sut:
        subprocess.run([sys.executable, str(GO_EXAMPLE / "build.py")], check=True)
    results = [measure(path.resolve(), args.runs) for path in suts]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"date": time.strftime("%Y-%m-%d"), "results": results}
    (RESULTS / "sut_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps([{r["sut"]: r["median"]} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
