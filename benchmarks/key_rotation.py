"""Signing-key rotation: `python benchmarks/key_rotation.py [--providers local,local-node] [--rounds N]`.

Per provider: start the cluster once, then N rounds of add -> retire -> restore (each a kube-apiserver
restart with the new key files, returning once ``/readyz`` answers 200), timing each step; after
each step a fresh TokenRequest token must carry the signing key's ``kid`` and pass a TokenReview, so
a figure is never one of a broken cluster. Medians and every sample go to stdout and
``benchmarks/results/key_rotation.json``; BENCHMARKS.md quotes them with machine, date and load.
local-node needs Linux and root and allows one node per machine (``--node-wait SECONDS``).
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
from typing import Any

from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import header_kid, request_token, review_token
from pytest_k8s_sa.providers.registry import build_provider
from pytest_k8s_sa.providers.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("add", "retire", "restore")


def _verify(cluster: Cluster, kid: str) -> None:
    token = request_token(cluster.api_client, "default", "default", expiration_seconds=600)
    if header_kid(token.raw) != kid:
        raise SystemExit(f"a fresh token carries kid {header_kid(token.raw)}, not the signing key's {kid}")
    if not review_token(cluster.api_client, token.raw).authenticated:
        raise SystemExit("a fresh token of the current key does not pass TokenReview")


def bench(provider_name: str, rounds: int, node_wait: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="k8s-sa-keybench-") as workdir:
        settings = Settings(provider=provider_name, work_dir=workdir, node_wait_seconds=node_wait)
        provider = build_provider(provider_name, settings)
        started = time.perf_counter()
        try:
            info = provider.create()
            start_seconds = round(time.perf_counter() - started, 2)
            cluster = Cluster(info, uuid.uuid4().hex[:8])
            control = cluster.key_control
            if control is None:
                raise SystemExit(f"{provider_name}: {cluster.key_control_missing}")
            samples: dict[str, list[float]] = {step: [] for step in STEPS}
            walls: dict[str, list[float]] = {step: [] for step in STEPS}
            for _ in range(rounds):
                for step, call in zip(
                    STEPS,
                    (control.add_signing_key, control.retire_old_keys, control.restore_original_key),
                    strict=True,
                ):
                    wall = time.perf_counter()
                    change = call()
                    walls[step].append(round(time.perf_counter() - wall, 2))
                    samples[step].append(change.restart_seconds)
                    _verify(cluster, change.signing_kid)
            cluster.close()
        finally:
            provider.destroy()
    return {
        "start_seconds": start_seconds,
        "rounds": rounds,
        "restart_seconds_median": {s: round(statistics.median(v), 2) for s, v in samples.items()},
        "step_wall_seconds_median": {s: round(statistics.median(v), 2) for s, v in walls.items()},
        "restart_seconds": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", default="local", help="comma-separated: local, local-node")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--node-wait", type=float, default=5.0, help="seconds to wait for the node lock")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "providers": {},
    }
    for name in [p.strip() for p in args.providers.split(",") if p.strip()]:
        if name not in ("local", "local-node"):
            parser.error(f"--providers: {name!r} cannot rotate its key (local and local-node can)")
        results["providers"][name] = bench(name, args.rounds, args.node_wait)
        print(name, json.dumps(results["providers"][name], indent=2))
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "key_rotation.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
