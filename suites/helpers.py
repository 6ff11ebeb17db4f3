"""Helpers shared by the conformance checks: how to ask the callee, and how to judge its answer.

Checks judge the system under test by status class and "no grant", never by this project's body
texts: any implementation may word its answers as it likes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import kubernetes
import pytest
import requests

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import Token, request_token
from pytest_k8s_sa.cluster.types import ServiceAccountRef
from pytest_k8s_sa.deploy import Workload
from pytest_k8s_sa.deploy.sut_deploy import SutRun
from pytest_k8s_sa.plugin.conformance import not_applicable

CALLEE_EXCLUSIVE = threading.RLock()
"""Held while the callee is disturbed on purpose (its API cut, its review rights taken, its caller's
token replaced) and by a background scenario while it needs the callee's normal verdicts (the
revocation): the two never overlap, whatever else runs meanwhile."""


def sa_ref(cluster: Cluster, workload: Workload) -> ServiceAccountRef:
    sa = resources.core(cluster.api_client).read_namespaced_service_account(
        workload.service_account, workload.namespace
    )
    return ServiceAccountRef(workload.namespace, workload.service_account, sa.metadata.uid)


def granted(status: int) -> bool:
    """A grant: any 2xx."""
    return 200 <= status < 300


def refused(status: int) -> bool:
    """A refusal of the credential: a 4xx (401 or 403 are what the checks' `should` level expects)."""
    return 400 <= status < 500


def ask(run: SutRun, token: str | None, timeout: float = 15) -> requests.Response:
    """Ask the callee directly, presenting ``token`` in its configured header (None: no header)."""
    headers = {} if token is None else run.sut.callee.credential_headers(token)
    return run.deployment.callee.get("/", headers=headers, timeout=timeout)


def store_says(run: SutRun, token: str | None) -> tuple[int, str]:
    answer = ask(run, token)
    return answer.status_code, answer.text


def require_caller(run: SutRun) -> None:
    if not run.has_caller:
        # Not applicable, not skipped: the SUT declares no caller, so a verdict without it is complete.
        not_applicable("the SUT file names no caller (`caller:`), so there is no caller to judge")


def call_through_caller(run: SutRun) -> requests.Response:
    """Make the caller call the callee (GET its ``call_path``) and relay the answer."""
    require_caller(run)
    assert run.sut.caller is not None
    return run.deployment.caller.get(run.sut.caller.call_path)


def callee_audience_token(cluster: Cluster, run: SutRun, workload: Workload) -> Token:
    """A token of ``workload``'s account for the callee's audience, bound to its pod, as its kubelet
    would project it: the suite plays that workload's part."""
    return request_token(
        cluster.api_client,
        workload.namespace,
        workload.service_account,
        audiences=[run.deployment.audience],
        expiration_seconds=600,
        bound_object=workload.pod,
    )


def allowed_token(cluster: Cluster, run: SutRun) -> str:
    """A fresh token of the allowed caller for the callee (pod-bound like a projected one).

    Fresh on purpose: a callee may cache a success for ``cache_seconds``; a token it has never seen
    must be reviewed, which is what the fail-closed checks need.
    """
    return callee_audience_token(cluster, run, run.deployment.caller).raw


def intruder_token(cluster: Cluster, run: SutRun) -> Token:
    """A valid token of the intruder (not on the allow-list) for the callee's own audience."""
    return callee_audience_token(cluster, run, run.deployment.intruder)


def status_of(run: SutRun, token: str, timeout: float = 30) -> int:
    """The callee's status for ``token``; 0 when it gave no answer within ``timeout`` (no grant either)."""
    try:
        return ask(run, token, timeout=timeout).status_code
    except requests.RequestException:
        return 0


def wait_for_grant(cluster: Cluster, run: SutRun, timeout: float, what: str) -> float:
    """Seconds until the callee grants fresh tokens of the allowed caller again (it recovered by itself)."""
    started = time.monotonic()
    wait_until(
        lambda: granted(status_of(run, allowed_token(cluster, run), timeout=10)),
        timeout,
        what,
        max_interval=1.0,
    )
    return round(time.monotonic() - started, 2)


def recovered_after(cluster: Cluster, run: SutRun, timeout: float, what: str) -> float | None:
    """:func:`wait_for_grant` after the cut is lifted, as evidence: ``None`` when the callee did not
    recover within ``timeout`` (the checks that judge recovery read it; the others record it)."""
    try:
        return wait_for_grant(cluster, run, timeout, what)
    except Exception:
        return None


def may_review(cluster: Cluster, workload: Workload) -> bool:
    """Whether ``workload``'s service account may create TokenReviews now (a SubjectAccessReview)."""
    namespace, name = workload.namespace, workload.service_account
    review = kubernetes.client.AuthorizationV1Api(cluster.api_client).create_subject_access_review(
        kubernetes.client.V1SubjectAccessReview(
            spec=kubernetes.client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{namespace}:{name}",
                groups=[
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ],
                resource_attributes=kubernetes.client.V1ResourceAttributes(
                    group="authentication.k8s.io", resource="tokenreviews", verb="create"
                ),
            )
        )
    )
    return bool(review.status.allowed)


@contextlib.contextmanager
def review_rights_removed(cluster: Cluster, run: SutRun) -> Iterator[None]:
    """The callee without its system:auth-delegator binding inside the block; restored (same name and
    labels) and effective again on leaving it. Skips where the binding was not found."""
    if run.binding is None:
        pytest.skip("the callee's system:auth-delegator ClusterRoleBinding was not found")
    api = cluster.api_client
    store = run.deployment.callee
    with CALLEE_EXCLUSIVE:
        binding = kubernetes.client.RbacAuthorizationV1Api(api).read_cluster_role_binding(run.binding)
        labels = dict(binding.metadata.labels or {})
        resources.delete_cluster_role_binding(api, run.binding)
        try:
            wait_until(
                lambda: not may_review(cluster, store),
                30,
                "the callee may still create TokenReviews after its binding was deleted",
            )
            yield
        finally:
            resources.grant_auth_delegator(api, run.binding, store.namespace, store.service_account, labels)
        wait_until(lambda: may_review(cluster, store), 30, "the restored binding does not take effect")
