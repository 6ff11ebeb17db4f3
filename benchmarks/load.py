"""Secret store under load: requests/s and p50/p99 latency with the review cache on and off.

``python benchmarks/load.py`` starts its own local control plane (cached binaries, see
``k8s-sa build``), deploys the workloads as local processes, and for each cache setting starts a fresh
secret store (``CACHE_TTL_SECONDS=10``, then ``0``) and drives it with ``--threads`` keep-alive clients
for ``--seconds`` (at most ``--max-requests``) with the load of the security gate
(``tests/security/test_load.py``): 35% valid tokens (3 distinct), 10% a real token of a service
account that is not allow-listed, 15% forged tokens (each unique, so each costs one TokenReview),
30% malformed tokens, 10% no header.

The client is Python threads on the same machine as the store and the apiserver, so the figures are
for comparing settings and commits on one machine, not absolute capacity. Results are printed and
written to ``benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import key_id, request_token
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy import Deployment, deploy_processes
from pytest_k8s_sa.deploy.loadgen import forger, run_load, standard_mix, store_beside
from pytest_k8s_sa.providers.registry import build_provider
from pytest_k8s_sa.providers.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"

AUDIENCE = "secret-store"


def measure(
    cluster: Cluster, deployment: Deployment, workdir: Path, cache_ttl: float, args: argparse.Namespace
) -> dict[str, object]:
    """One fresh store with ``CACHE_TTL_SECONDS=cache_ttl`` under the load; its figures."""
    api = cluster.api_client
    api_ns, api_sa = deployment.caller.namespace, deployment.caller.service_account
    sa_uid = resources.core(api).read_namespaced_service_account(api_sa, api_ns).metadata.uid
    valid = [
        request_token(api, api_ns, api_sa, audiences=[AUDIENCE], expiration_seconds=3600).raw
        for _ in range(3)
    ]
    data = deployment.intruder
    not_allowed = [request_token(api, data.namespace, data.service_account, audiences=[AUDIENCE]).raw]
    real = serialization.load_pem_private_key(Path(cluster.signing_key).read_bytes(), password=None)
    mix = standard_mix(
        valid, not_allowed, forger(cluster.issuer, api_ns, api_sa, sa_uid, key_id(real.public_key()))
    )

    store = store_beside(
        cluster,
        deployment,
        workdir,
        f"secret-store-bench-ttl{cache_ttl:g}",
        env={"CACHE_TTL_SECONDS": str(cache_ttl)},
    )
    try:
        stats_before, rss_before = store.stats(), store.rss_bytes()
        result = run_load(
            store.url, mix, threads=args.threads, seconds=args.seconds, max_requests=args.max_requests, seed=1
        )
        stats_after, rss_after = store.stats(), store.rss_bytes()
    finally:
        store.stop()
    counters = {name: stats_after[name] - stats_before[name] for name in stats_after}
    return {
        "cache_ttl_seconds": cache_ttl,
        **result.summary(),
        "unexpected_statuses": {k: dict(v) for k, v in result.unexpected.items()},
        "error_samples": result.error_samples[:5],
        "store_counters": counters,
        "store_rss_mib": {"before": round(rss_before / 2**20, 1), "after": round(rss_after / 2**20, 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=300_000, help="upper bound per cache setting")
    parser.add_argument("--output", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="k8s-sa-load-") as tmp:
        workdir = Path(tmp)
        provider = build_provider("local", Settings(work_dir=str(workdir / "cluster")))
        run_id = uuid.uuid4().hex[:8]
        try:
            cluster = Cluster(provider.create(), run_id)
            with deploy_processes(cluster, Names(run_id), workdir / "workloads") as deployment:
                for cache_ttl in (10.0, 0.0):
                    print(
                        f"cache TTL {cache_ttl:g} s: {args.threads} threads for {args.seconds:g} s ...",
                        flush=True,
                    )
                    runs.append(measure(cluster, deployment, workdir / f"ttl-{cache_ttl:g}", cache_ttl, args))
            server_version = cluster.server_version
            cluster.close()
        finally:
            provider.destroy()

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "kube_apiserver": server_version,
        "threads": args.threads,
        "seconds": args.seconds,
        "max_requests": args.max_requests,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    header = ("cache", "requests", "req/s", "p50 ms", "p99 ms", "valid p50", "valid p99", "reviews", "errors")
    rows = [header]
    failed = False
    for run in runs:
        valid = run["by_kind"].get("valid", {})
        rows.append(
            (
                "off" if run["cache_ttl_seconds"] == 0 else f"{run['cache_ttl_seconds']:g} s",
                run["requests"],
                run["requests_per_second"],
                run["p50_ms"],
                run["p99_ms"],
                valid.get("p50_ms", "-"),
                valid.get("p99_ms", "-"),
                run["store_counters"]["reviews"],
                run["errors"],
            )
        )
        failed |= bool(run["errors"] or run["unexpected_statuses"])
        if run["unexpected_statuses"]:
            print(f"unexpected statuses with cache {rows[-1][0]}: {run['unexpected_statuses']}")
    print()
    for row in rows:
        print(" ".join(f"{cell!s:>10}" for cell in row))
    print(f"\nwritten to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
