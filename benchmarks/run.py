"""Benchmarks: `python benchmarks/run.py` (or `nox -s bench`). Figures go to BENCHMARKS.md by hand.

1. control-plane start to ready (cached binaries): ``ControlPlane.start()`` until ``/readyz`` is
   200 and the ``default`` service account exists; N cold starts, fresh PKI each time.
2. per-test fixture cost: namespace + service account + TokenRequest + TokenReview (what one
   token test pays), measured on one running control plane.
3. the conformance suite's ``fast`` profile end to end, control-plane start included, as a
   ``pytest suites`` subprocess, with the median time of each scenario its checks share.

Medians (and min/max) are printed and written to ``benchmarks/results/run.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import kubernetes

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import request_token, review_token
from pytest_k8s_sa.components.binaries import find_binaries
from pytest_k8s_sa.components.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "n": len(samples),
    }


def bench_start(runs: int) -> dict[str, float]:
    binaries = find_binaries()
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="k8s-sa-bench-") as workdir:
            plane = ControlPlane(Path(workdir), binaries)
            started = time.perf_counter()
            plane.start()
            samples.append(time.perf_counter() - started)
            plane.stop()
    return summary(samples)


def bench_fixture_cost(runs: int) -> dict[str, float]:
    binaries = find_binaries()
    samples = []
    with (
        tempfile.TemporaryDirectory(prefix="k8s-sa-bench-") as workdir,
        ControlPlane(Path(workdir), binaries) as plane,
    ):
        api = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
        labels = resources.run_labels("bench")
        for _ in range(runs + 3):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            resources.create_namespace(api, name, labels)
            resources.create_service_account(api, name, "sa")
            token = request_token(api, name, "sa", audiences=["secret-store"], expiration_seconds=600)
            assert review_token(api, token.raw, ["secret-store"]).authenticated
            resources.delete_namespace(api, name)
            samples.append(time.perf_counter() - started)
        api.close()
    return summary(samples[3:])  # the first calls warm up connections and caches


def bench_suite(runs: int, suites: Path = ROOT / "suites") -> dict[str, object]:
    """The fast profile end to end, and the median time of each scenario its checks recorded
    (``scenario_seconds`` in the report's evidence: the revocation, outages, rotation...)."""
    samples = []
    scenarios: dict[str, list[float]] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="k8s-sa-bench-") as workdir:
            report = Path(workdir) / "report.json"
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    # As `nox -s conformance` runs it: without the project's test extras, whose
                    # hypothesis plugin imports all of hypothesis for the terminal summary (2.3 s).
                    *(sys.executable, "-m", "pytest", str(suites), "-q", "-p", "no:cacheprovider"),
                    *("-p", "no:hypothesispytest"),
                    *("--conformance-profile", "fast", "--conformance-report", str(report)),
                    "--k8s-start-early",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            samples.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"conformance suite failed:\n{proc.stdout[-3000:]}")
            seen: dict[str, float] = {}
            for check in json.loads(report.read_text())["checks"]:
                seen.update(check["evidence"].get("scenario_seconds", {}))
            for name, seconds in seen.items():
                scenarios.setdefault(name, []).append(seconds)
    return {
        **summary(samples),
        "scenario_seconds_median": {
            name: round(statistics.median(s), 2) for name, s in sorted(scenarios.items())
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--start-runs", type=int, default=7)
    parser.add_argument("--fixture-runs", type=int, default=30)
    parser.add_argument("--suite-runs", type=int, default=5)
    parser.add_argument("--suite-only", action="store_true", help="only the fast profile end to end")
    parser.add_argument("--suites", type=Path, default=ROOT / "suites", help="the suite folder to time")
    args = parser.parse_args()
    if args.suite_only:
        suite = {"fast_suite_end_to_end_seconds": bench_suite(args.suite_runs, args.suites)}
        print(json.dumps(suite, indent=2))
        return 0
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.node()}, Python {platform.python_version()}",
        "control_plane_start_seconds": bench_start(args.start_runs),
        "per_test_fixture_seconds": bench_fixture_cost(args.fixture_runs),
        "fast_suite_end_to_end_seconds": bench_suite(args.suite_runs, args.suites),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "run.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
