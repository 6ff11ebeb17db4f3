"""Node benchmarks (local-node provider; Linux, root): `python benchmarks/node.py [--runs N]`.

Per run: control plane + node start (node Ready, DNS ready, total), then applying
``fixtures/manifests`` until the first authenticated call API -> secret store succeeds, then
teardown. Medians go to stdout and ``benchmarks/results/node.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy import deploy_manifests
from pytest_k8s_sa.providers.registry import build_provider
from pytest_k8s_sa.providers.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def one_run() -> dict[str, float]:
    provider = build_provider("local-node", Settings(provider="local-node"))
    started = time.perf_counter()
    try:
        info = provider.create()
        timings = {f"start_{k}": v for k, v in getattr(provider, "timings", {}).items()}
        timings["start_wall_seconds"] = round(time.perf_counter() - started, 2)
        cluster = Cluster(info, uuid.uuid4().hex[:8])
        with (
            tempfile.TemporaryDirectory() as workdir,
            deploy_manifests(cluster, Names(cluster.run_id), Path(workdir)) as deployment,
        ):
            timings.update(deployment.timings)
        cluster.close()
    finally:
        torn = time.perf_counter()
        provider.destroy()
        timings_teardown = round(time.perf_counter() - torn, 2)
    timings["teardown_seconds"] = timings_teardown
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    keys = sorted({k for run in runs for k in run})
    medians = {k: round(statistics.median(run[k] for run in runs if k in run), 2) for k in keys}
    result = {"date": time.strftime("%Y-%m-%d"), "runs": runs, "median": medians}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "node.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
