"""Secret-store processes for measurements and a load generator, shared by tests and benchmarks.

``store_beside`` starts one more secret store as a local process (emulated kubelet) with the
deployed store's identity and hands back what measurements look at (stats, RSS); ``run_load``
drives it with keep-alive clients sending a :class:`Mix` of tokens; ``standard_mix`` and ``forger``
make the mix of the security gate (``tests/security/test_load.py``) and of ``benchmarks/load.py``. No pytest.
"""

from __future__ import annotations

import http.client
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from ..base.process import Process
from ..cluster.cluster import Cluster
from ..sut.hostile import rss_bytes
from . import Deployment, Workload, start_secret_store_process
from .projector import TokenProjector


@dataclass
class StoreHandle:
    """A secret-store process started by a test, with what the checks look at."""

    workload: Workload
    process: Process
    projector: TokenProjector

    @property
    def url(self) -> str:
        return self.workload.url

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def stats(self) -> dict[str, int]:
        return store_stats(self.url)

    def rss_bytes(self) -> int:
        assert self.process.pid is not None
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        self.process.stop()
        self.projector.stop()

    @classmethod
    def of(cls, workload: Workload) -> StoreHandle:
        """Wrap a store from :func:`~pytest_k8s_sa.deploy.start_secret_store_process`.

        ``api_url`` there replaces the apiserver's address (e.g. a proxy in front of it), ``extra_ca``
        is trusted too (a proxy that terminates TLS itself), ``env`` sets further variables
        (``REVIEW_TIMEOUT_SECONDS``, ``CACHE_TTL_SECONDS``, ...).
        """
        assert workload.process is not None
        assert workload.projector is not None
        return cls(workload, workload.process, workload.projector)


def store_beside(
    cluster: Cluster, deployment: Deployment, workdir: Path, name: str, **options: Any
) -> StoreHandle:
    """One more secret-store process with the deployed store's identity (so its auth-delegator
    binding) and allow-list; ``options`` go to ``start_secret_store_process`` (``api_url``,
    ``extra_ca``, ``env``)."""
    identity = deployment.callee
    assert identity.pod is not None  # local processes: the pod the emulated kubelet binds tokens to
    return StoreHandle.of(
        start_secret_store_process(
            cluster,
            workdir,
            name=name,
            namespace=identity.namespace,
            service_account=identity.service_account,
            pod=identity.pod,
            allowed=f"{deployment.caller.namespace}:{deployment.caller.service_account}",
            **options,
        )
    )


def store_stats(url: str) -> dict[str, int]:
    answer = requests.get(f"{url}/debug/stats", timeout=5)
    answer.raise_for_status()
    stats: dict[str, int] = answer.json()
    return stats


@dataclass
class Mix:
    """What the load sends: kind -> (weight, token source, expected statuses)."""

    kinds: dict[str, tuple[float, Callable[[random.Random], str | None], frozenset[int]]]

    def pick(self, rng: random.Random) -> tuple[str, str | None]:
        names = list(self.kinds)
        kind = rng.choices(names, weights=[self.kinds[n][0] for n in names])[0]
        return kind, self.kinds[kind][1](rng)


@dataclass
class LoadResult:
    threads: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    unexpected: dict[str, Counter[int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = self.latencies.get(kind, []) if kind else [v for vs in self.latencies.values() for v in vs]
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]

    def count(self, kind: str) -> int:
        return sum(self.statuses.get(kind, Counter()).values())

    def summary(self) -> dict[str, object]:
        return {
            "threads": self.threads,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.5) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "errors": self.errors,
            "by_kind": {
                kind: {
                    "requests": self.count(kind),
                    "statuses": {str(k): v for k, v in sorted(self.statuses[kind].items())},
                    "p50_ms": round(self.percentile(0.5, kind) * 1000, 2),
                    "p99_ms": round(self.percentile(0.99, kind) * 1000, 2),
                }
                for kind in sorted(self.statuses)
            },
        }


def run_load(
    url: str, mix: Mix, *, threads: int, seconds: float, max_requests: int, seed: int = 0
) -> LoadResult:
    """``threads`` keep-alive clients send ``mix`` for ``seconds`` or ``max_requests`` in all."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    result = LoadResult(threads, 0.0)
    budget = iter(range(max_requests))
    start_gate = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        statuses: dict[str, Counter[int]] = {}
        unexpected: dict[str, Counter[int]] = {}
        latencies: dict[str, list[float]] = {}
        errors: list[str] = []
        conn = http.client.HTTPConnection(host, port, timeout=30)
        start_gate.wait()
        try:
            while time.monotonic() < deadline[0]:
                with lock:
                    if next(budget, None) is None:
                        break
                kind, token = mix.pick(rng)
                headers = {} if token is None else {"X-Client-Id": token}
                began = time.perf_counter()
                try:
                    conn.request("GET", "/", headers=headers)
                    answer = conn.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:200])
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                    continue
                latencies.setdefault(kind, []).append(time.perf_counter() - began)
                statuses.setdefault(kind, Counter())[answer.status] += 1
                if answer.status not in mix.kinds[kind][2]:
                    unexpected.setdefault(kind, Counter())[answer.status] += 1
        finally:
            conn.close()
            with lock:
                result.errors += len(errors)
                result.error_samples.extend(errors[:5])
                for kind, counts in statuses.items():
                    result.statuses.setdefault(kind, Counter()).update(counts)
                    result.requests += sum(counts.values())
                for kind, counts in unexpected.items():
                    result.unexpected.setdefault(kind, Counter()).update(counts)
                for kind, values in latencies.items():
                    result.latencies.setdefault(kind, []).extend(values)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    started = time.monotonic()
    deadline[0] = started + seconds
    start_gate.wait()
    for thread in pool:
        thread.join(timeout=seconds + 60)
    result.seconds = time.monotonic() - started
    return result


MALFORMED_SAMPLES = ("a.b", "", "not-a-token", "x" * 20000, "a.b.c.d", "Bearer a.b.c")
"""Refused before any TokenReview (shape, size): they must cost the store no API call."""


def forger(issuer: str, namespace: str, name: str, uid: str, kid: str) -> Callable[[random.Random], str]:
    """Fresh tokens for the allow-listed account signed by a key the cluster never saw (each unique).

    Unique on purpose: a refused token is never cached, so each one costs exactly one review, which lets
    the load check account for every TokenReview call.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    lock = threading.Lock()

    def make(_rng: random.Random) -> str:
        t = int(time.time())
        claims = {
            "iss": issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": ["secret-store"],
            "iat": t,
            "nbf": t,
            "exp": t + 3600,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        with lock:
            return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    return make


def standard_mix(
    valid: Sequence[str], not_allowed: Sequence[str], forge: Callable[[random.Random], str]
) -> Mix:
    """A few valid tokens, many invalid ones: the load of the issue's gate and of the benchmark."""
    return Mix(
        {
            "valid": (0.35, lambda rng: rng.choice(valid), frozenset({200})),
            "not-allowed": (0.10, lambda rng: rng.choice(not_allowed), frozenset({403})),
            "forged": (0.15, forge, frozenset({403})),
            "malformed": (0.30, lambda rng: rng.choice(MALFORMED_SAMPLES), frozenset({403})),
            "missing": (0.10, lambda rng: None, frozenset({401})),
        }
    )
