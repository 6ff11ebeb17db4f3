"""Bounded concurrent load on a real secret store: correct answers, no errors, bounded memory, one review.

A fresh store (its counters start at zero) gets a few valid and many invalid tokens from concurrent
keep-alive clients, for less than the cache TTL and at most a fixed number of requests:

* no transport error and no 5xx; valid tokens get 200, every other kind 401/403;
* the store's resident memory grows by less than 50 MiB;
* TokenReview calls (the store's ``reviews`` counter) account exactly: one per distinct token the
  cache may keep (the valid ones, and a real-but-not-allowed one: successes are cached whatever the
  allow-list says), plus one per forged token (each unique, and refusals are never cached);
  malformed tokens and missing headers cost none. So within the TTL each valid token was reviewed
  exactly once, however many requests carried it.

Nothing here asserts throughput; ``benchmarks/load.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pytest_k8s_sa.cluster.tokens import key_id, request_token

from ._support import StoreHandle, forger, run_load, standard_mix, store_beside

AUDIENCE = "secret-store"
CACHE_TTL = 10.0
THREADS = 24
SECONDS = 7.0
"""Shorter than the cache TTL, so "one review per valid token" is exact, not one per TTL window."""
MAX_REQUESTS = 8000
MAX_RSS_GROWTH = 50 * 1024 * 1024


@pytest.fixture
def load_store(k8s_cluster, deployment, tmp_path_factory) -> Iterator[StoreHandle]:
    store = store_beside(
        k8s_cluster,
        deployment,
        tmp_path_factory.mktemp("load-store"),
        "secret-store-load",
        env={"CACHE_TTL_SECONDS": str(CACHE_TTL)},
    )
    yield store
    store.stop()


def test_concurrent_load_is_correct_bounded_and_reviews_each_valid_token_once(
    k8s_cluster, deployment, api_sa, data_store_sa, load_store
):
    api = k8s_cluster.api_client
    valid = [
        request_token(api, api_sa.namespace, api_sa.name, audiences=[AUDIENCE], expiration_seconds=3600).raw
        for _ in range(3)
    ]
    not_allowed = [request_token(api, data_store_sa.namespace, data_store_sa.name, audiences=[AUDIENCE]).raw]
    kid = "unknown"
    if k8s_cluster.signing_key is not None:
        real = serialization.load_pem_private_key(k8s_cluster.signing_key.read_bytes(), password=None)
        assert isinstance(real, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey), type(real)
        kid = key_id(real.public_key())  # forged tokens claim the real key id
    mix = standard_mix(
        valid, not_allowed, forger(k8s_cluster.issuer, api_sa.namespace, api_sa.name, api_sa.uid, kid)
    )

    before_stats, before_rss = load_store.stats(), load_store.rss_bytes()
    result = run_load(
        load_store.url, mix, threads=THREADS, seconds=SECONDS, max_requests=MAX_REQUESTS, seed=5
    )
    after_stats, after_rss = load_store.stats(), load_store.rss_bytes()
    delta = {name: after_stats[name] - before_stats[name] for name in after_stats}
    summary = result.summary()
    print(f"load: {summary} store counters {delta} rss growth {(after_rss - before_rss) / 2**20:.1f} MiB")

    assert result.errors == 0, result.error_samples
    assert not result.unexpected, {k: dict(v) for k, v in result.unexpected.items()}
    assert all(result.count(kind) > 0 for kind in mix.kinds), summary["by_kind"]
    assert result.seconds < CACHE_TTL, "the load outlasted the cache TTL; the review count below assumes not"
    assert delta["requests"] == result.requests
    assert delta["unavailable"] == 0
    reviews_of_cacheable = delta["reviews"] - result.count("forged")
    assert reviews_of_cacheable == len(valid) + len(not_allowed), delta
    assert after_rss - before_rss < MAX_RSS_GROWTH
    assert load_store.process.running()
