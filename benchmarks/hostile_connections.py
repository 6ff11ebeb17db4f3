"""Secret store under hostile connections: its RSS and a valid caller's p50/p99, limits on and off.

``python benchmarks/hostile_connections.py`` starts its own local control plane (cached binaries, see
``k8s-sa build``), deploys the workloads as local processes, and for each setting and repeat starts a
fresh secret store (reviewing with the real kube-apiserver) and drives it with
``pytest_k8s_sa.sut.hostile.run_hostile_load`` for ``--seconds``: 8 connections sending 99 header lines
of 1 MB that never end the block (the issue's measurement), 8 trickling a byte every 0.5 s, 8 idle,
each reconnecting when the store ends it, while one valid caller calls over and over on new
connections. Settings:

* ``quiet``: the shipped limits, no hostile connection (the valid caller alone: the reference p50/p99),
* ``limits``: the shipped limits (``MAX_HEADER_BYTES`` 1 MiB + 64 KiB, ``MAX_HEADERS`` 100,
  ``HEADER_TIMEOUT_SECONDS`` 10, ``MAX_CONNECTIONS`` 64, ``HEADER_MEMORY_BYTES`` 16 MiB) under the
  hostile load,
* ``no-limits``: ``MAX_HEADER_BYTES=268435456 HEADER_TIMEOUT_SECONDS=0 MAX_CONNECTIONS=0
  HEADER_MEMORY_BYTES=0`` under the same load: for this load, the bounds the store had before the
  limits (at most 100 header lines of at most 2 MiB, a 30 s timeout per read, no connection cap).
* ``budget-only``: as ``no-limits`` but with the shared ``HEADER_MEMORY_BYTES`` budget (16 MiB): what
  that budget alone does.

RSS is sampled every 0.2 s (``/proc/<pid>/status``); the peak minus the idle RSS (after one warm-up
call) is the growth. The clients run on the same cores as the store and the apiserver, so compare
settings on one machine, not absolute numbers. Results are printed and written to
``benchmarks/results/hostile_connections.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import request_token
from pytest_k8s_sa.deploy import Deployment, deploy_processes
from pytest_k8s_sa.deploy.loadgen import store_beside
from pytest_k8s_sa.plugin.fixtures import Names
from pytest_k8s_sa.providers.local import LocalProvider
from pytest_k8s_sa.sut import hostile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
AUDIENCE = "secret-store"
MIB = 1024 * 1024
NO_LIMITS = {
    "MAX_HEADER_BYTES": "268435456",
    "HEADER_TIMEOUT_SECONDS": "0",
    "MAX_CONNECTIONS": "0",
    "HEADER_MEMORY_BYTES": "0",
}
SETTINGS: dict[str, tuple[dict[str, str], bool]] = {
    "quiet": ({}, False),
    "limits": ({}, True),
    "budget-only": ({k: v for k, v in NO_LIMITS.items() if k != "HEADER_MEMORY_BYTES"}, True),
    "no-limits": (NO_LIMITS, True),
}


def measure(
    cluster: Cluster,
    deployment: Deployment,
    workdir: Path,
    name: str,
    env: dict[str, str],
    hostile_load: bool,
    token: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    """One fresh store with ``env`` (under the hostile load or not); its figures."""
    store = store_beside(cluster, deployment, workdir, name, env=env)
    pid = store.process.pid
    assert pid is not None
    try:
        call = hostile.valid_caller(store.url, {"X-Client-Id": token})
        if call() != 200:
            raise RuntimeError(f"{name}: the valid token was not accepted")
        idle_rss = hostile.rss_bytes(pid)
        count = 8 if hostile_load else 0
        report = hostile.run_hostile_load(
            store.url,
            seconds=args.seconds,
            oversized=count,
            trickled=count,
            idle=count,
            valid=call,
            rss=lambda: hostile.rss_bytes(pid),
            hold=args.seconds + 30,
        )
        survived = store.process.running() and store.process.pid == pid
    finally:
        store.stop()
    return {
        "idle_rss_mib": round(idle_rss / MIB, 1),
        "peak_rss_mib": round(report.peak_rss / MIB, 1),
        "rss_growth_mib": round((report.peak_rss - idle_rss) / MIB, 1),
        "valid_p50_ms": round(hostile.percentile(report.valid_latencies, 0.5) * 1000, 2),
        "valid_p99_ms": round(hostile.percentile(report.valid_latencies, 0.99) * 1000, 2),
        "valid_calls": sum(report.valid_statuses.values()),
        "valid_not_200": sum(n for status, n in report.valid_statuses.items() if status != 200),
        "valid_errors": len(report.valid_errors),
        "hostile_ended_by_store": report.ended_by_server,
        "hostile_held": report.held,
        "survived": survived,
        "report": report.summary(),
    }


def median(runs: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(str(run[key])) for run in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="hostile load per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (medians are quoted)")
    parser.add_argument("--output", type=Path, default=RESULTS / "hostile_connections.json")
    args = parser.parse_args()

    runs: dict[str, list[dict[str, object]]] = {name: [] for name in SETTINGS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="k8s-sa-hostile-") as tmp:
        workdir = Path(tmp)
        provider = LocalProvider(workdir / "cluster")
        run_id = uuid.uuid4().hex[:8]
        try:
            cluster = Cluster(provider.create(), run_id)
            with deploy_processes(cluster, Names(run_id), workdir / "workloads") as deployment:
                token = request_token(
                    cluster.api_client,
                    deployment.caller.namespace,
                    deployment.caller.service_account,
                    audiences=[AUDIENCE],
                    expiration_seconds=3600,
                ).raw
                for repeat in range(args.repeats):
                    for name, (env, hostile_load) in SETTINGS.items():
                        print(f"{name} #{repeat + 1}: {args.seconds:g} s ...", flush=True)
                        run = measure(
                            cluster,
                            deployment,
                            workdir / f"{name}-{repeat}",
                            f"secret-store-{name}-{repeat}",
                            env,
                            hostile_load,
                            token,
                            args,
                        )
                        print(f"  {json.dumps({k: v for k, v in run.items() if k != 'report'})}", flush=True)
                        runs[name].append(run)
            server_version = cluster.server_version
            cluster.close()
        finally:
            provider.destroy()

    keys = ("rss_growth_mib", "peak_rss_mib", "valid_p50_ms", "valid_p99_ms")
    medians = {name: {key: median(setting_runs, key) for key in keys} for name, setting_runs in runs.items()}
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "kube_apiserver": server_version,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "medians": medians,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    print()
    header = ("setting", "RSS growth MiB", "peak RSS MiB", "valid p50 ms", "valid p99 ms", "survived")
    print(" ".join(f"{cell:>15}" for cell in header))
    for name, values in medians.items():
        survived = all(run["survived"] for run in runs[name])
        cells = (name, *(values[key] for key in keys), survived)
        print(" ".join(f"{cell!s:>15}" for cell in cells))
    print(f"\nwritten to {args.output}")
    return 0 if all(run["survived"] for run in runs["limits"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
