"""Fail closed: when TokenReview gives no usable answer the secret store says 503, never 200, in time.

A secret store process is started whose Kubernetes API is a loopback endpoint the test controls
(:class:`FlakyApi`): it forwards to the real kube-apiserver, or refuses, resets, hangs, trickles, or
answers garbage. A second store runs as a service account without ``system:auth-delegator`` (the
apiserver answers 403 to its reviews). Each failure must give 503 within the review timeout plus a
margin: that is a correctness bound (the store must not hang its clients), not a speed claim. Then the
API comes back and the *same* process must answer 200 again by itself.

The stores run with ``CACHE_TTL_SECONDS=0`` so every request is a real review: a cached success would
(rightly, for up to 10 s) hide an outage, which is not what these checks are about.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import BoundObject

from ._support import (
    FlakyApi,
    StoreHandle,
    http_response,
    make_test_ca,
    start_secret_store_process,
    store_beside,
    wait_for_status,
)

REVIEW_TIMEOUT = 2.0
MARGIN = 2.5
"""Process start-up of the request, scheduling on a loaded 2-core machine: generous, still far below
what a store that waited on a hung API (or a trickling one) would take."""
RECOVERY_SECONDS = 20.0


def garbage_answers(api_username: str) -> dict[str, bytes]:
    success: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": {"authenticated": True, "user": {"username": api_username}, "audiences": ["secret-store"]},
    }

    def js(obj: object) -> bytes:
        return json.dumps(obj).encode()

    return {
        "200 text": http_response(200, b"hello", content_type="text/plain"),
        "200 JSON list": http_response(200, b"[]"),
        "200 JSON null": http_response(200, b"null"),
        "200 TokenReview without status": http_response(200, js({"kind": "TokenReview"})),
        "200 authenticated as a string": http_response(
            200, js({**success, "status": {**success["status"], "authenticated": "true"}})
        ),
        "200 user not an object": http_response(
            200, js({**success, "status": {**success["status"], "user": "admin"}})
        ),
        "200 success under another kind": http_response(200, js({**success, "kind": "Status"})),
        "500 with a success body": http_response(500, js(success)),
        "401 with a success body": http_response(401, js(success)),
        "403 Forbidden": http_response(403, js({"kind": "Status", "code": 403, "reason": "Forbidden"})),
        "302 redirect": http_response(302, b"", extra="Location: https://127.0.0.1:9/\r\n"),
        "truncated body": http_response(200, js(success))[:-20],
        "body over 1 MiB": http_response(200, b" " * (2 * 1024 * 1024) + js(success)),
        "deeply nested JSON": http_response(200, b"[" * 100_000 + b"]" * 100_000),
        "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n",
        "nothing": b"",
        "broken chunked encoding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    }


@pytest.fixture(scope="module")
def tls_pair():
    return make_test_ca()


@pytest.fixture(scope="module")
def flaky_api(k8s_cluster, deployment, tls_pair, tmp_path_factory) -> Iterator[FlakyApi]:
    server = urlsplit(k8s_cluster.api_client.configuration.host)
    proxy = FlakyApi(
        (server.hostname or "127.0.0.1", server.port or 443),
        tls_pair[1],
        tmp_path_factory.mktemp("flaky-api"),
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def proxied_store(k8s_cluster, deployment, flaky_api, tls_pair, tmp_path_factory) -> Iterator[StoreHandle]:
    """A secret store (the deployed store's identity, with auth-delegator) behind the flaky API."""
    store = store_beside(
        k8s_cluster,
        deployment,
        tmp_path_factory.mktemp("proxied-store"),
        "secret-store-proxied",
        api_url=flaky_api.url,
        extra_ca=tls_pair[0].cert_pem,
        env={"REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT), "CACHE_TTL_SECONDS": "0"},
    )
    yield store
    store.stop()


@pytest.fixture
def forwarding(flaky_api, proxied_store, api_token) -> Iterator[FlakyApi]:
    """Each check starts with the API reachable and the store answering 200, and leaves it so."""
    flaky_api.set_mode("forward")
    wait_for_status(proxied_store.url, api_token.raw, 200, RECOVERY_SECONDS, "store does not answer 200")
    yield flaky_api
    flaky_api.set_mode("forward")


def ask(url: str, token: str) -> tuple[int, float]:
    """``(status, seconds)``; status 0 when the store gave no answer within ten review timeouts."""
    started = time.monotonic()
    try:
        status = requests.get(url, headers={"X-Client-Id": token}, timeout=REVIEW_TIMEOUT * 10).status_code
    except requests.RequestException:
        status = 0
    return status, time.monotonic() - started


def assert_fails_closed_then_recovers(store: StoreHandle, token: str, requests_: int = 3) -> list[float]:
    before = store.stats()
    answers = [ask(store.url, token) for _ in range(requests_)]
    statuses = [status for status, _ in answers]
    seconds = [round(elapsed, 2) for _, elapsed in answers]
    assert statuses == [503] * requests_, f"statuses {statuses} (seconds {seconds})"
    assert max(seconds) < REVIEW_TIMEOUT + MARGIN, f"answers took {seconds} s"
    assert store.process.running()
    assert store.stats()["unavailable"] - before["unavailable"] == requests_
    return seconds


def recovered(store: StoreHandle, flaky_api: FlakyApi, token: str) -> None:
    pid = store.process.pid
    flaky_api.set_mode("forward")
    wait_for_status(store.url, token, 200, RECOVERY_SECONDS, "store did not recover after the API came back")
    assert store.process.running()
    assert store.process.pid == pid, "recovered by restarting, not by itself"


@pytest.mark.parametrize("mode", ["down", "reset", "hang", "plaintext", "silent", "trickle"])
def test_unusable_api_gives_503_within_the_timeout_then_recovers(mode, forwarding, proxied_store, api_token):
    trickled = http_response(200, b'{"kind":"TokenReview","status":{"authenticated":false}}' + b" " * 200)
    forwarding.set_mode(mode, trickled if mode == "trickle" else b"")
    assert_fails_closed_then_recovers(proxied_store, api_token.raw)
    recovered(proxied_store, forwarding, api_token.raw)


@pytest.mark.parametrize("answer", list(garbage_answers("system:serviceaccount:x:y")))
def test_garbage_from_the_api_gives_503_then_recovers(
    answer, forwarding, proxied_store, api_token, deployment
):
    body = garbage_answers(deployment.caller.username)[answer]
    forwarding.set_mode("http", body)
    assert_fails_closed_then_recovers(proxied_store, api_token.raw, requests_=2)
    recovered(proxied_store, forwarding, api_token.raw)


def test_concurrent_clients_of_a_hung_api_all_get_503_in_time(forwarding, proxied_store, api_token):
    """Requests that share one in-flight review (same token) must not wait longer than its timeout."""
    forwarding.set_mode("hang")
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def client() -> None:
        outcome = ask(proxied_store.url, api_token.raw)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REVIEW_TIMEOUT * 10)
    assert len(results) == 8
    assert {status for status, _ in results} == {503}, results
    assert max(elapsed for _, elapsed in results) < 2 * REVIEW_TIMEOUT + MARGIN, results
    recovered(proxied_store, forwarding, api_token.raw)


def test_store_without_auth_delegator_gives_503_then_recovers_when_granted(
    k8s_cluster, k8s_names, deployment, api_token, tmp_path_factory
):
    """TokenReview forbidden (403 from the apiserver): 503, never 200; granting the role heals it."""
    api = k8s_cluster.api_client
    namespace = k8s_names("unprivileged-store")
    resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
    binding = k8s_names("k8s-sa-late-auth-delegator")
    store = None
    try:
        resources.create_service_account(api, namespace, "store")
        pod = resources.create_placeholder_pod(api, namespace, "store", "store")
        store = StoreHandle.of(
            start_secret_store_process(
                k8s_cluster,
                tmp_path_factory.mktemp("unprivileged-store"),
                name="secret-store-unprivileged",
                namespace=namespace,
                service_account="store",
                pod=BoundObject("Pod", pod.name, pod.uid),
                allowed=f"{deployment.caller.namespace}:{deployment.caller.service_account}",
                env={"REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT), "CACHE_TTL_SECONDS": "0"},
            )
        )
        assert_fails_closed_then_recovers(store, api_token.raw)
        review_errors = [
            json.loads(line).get("review_error", "")
            for line in store.log_path.read_text().splitlines()
            if '"decision"' in line
        ]
        assert any("403" in error for error in review_errors), review_errors
        resources.grant_auth_delegator(
            api, binding, namespace, "store", resources.run_labels(k8s_cluster.run_id)
        )
        pid = store.process.pid
        wait_for_status(store.url, api_token.raw, 200, RECOVERY_SECONDS, "store did not recover once granted")
        assert store.process.pid == pid
    finally:
        resources.delete_cluster_role_binding(api, binding)
        if store is not None:
            store.stop()
        resources.delete_namespace(api, namespace)
