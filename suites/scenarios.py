"""Shared scenarios: setups whose cost (the apiserver's 10 s cache, real-time waits) checks share."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
import requests

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import BoundObject, Token, TokenReviewResult, request_token, review_token

from .helpers import call_through_caller, granted, refused, sa_ref, store_says


@dataclass
class Case:
    token: Token
    before: TokenReviewResult
    after: TokenReviewResult | None = None
    seconds: float | None = None
    after_recreate: TokenReviewResult | None = None
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="session")
def revoked(k8s_cluster, k8s_names, sut_run) -> dict[str, Case]:
    """Bind tokens to a pod, a service account, a secret and a legacy Secret; delete them all at
    once; wait once until every token is refused; then recreate same-name objects."""
    deployment = sut_run.deployment
    AUDIENCE = deployment.audience
    api = k8s_cluster.api_client
    core = resources.core(api)
    namespace = k8s_names("revocation")
    resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
    resources.create_service_account(api, namespace, "bound")
    resources.create_service_account(api, namespace, "doomed")
    # The pod case uses the API service's own identity, so the secret store accepts it until revoked.
    api_ns = deployment.caller.namespace
    pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    secret = core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="bound-secret"), string_data={"k": "v"}
        ),
    )

    def issue(sa: str, bound: BoundObject | None, ns: str = namespace) -> Case:
        token = request_token(api, ns, sa, audiences=[AUDIENCE], expiration_seconds=3600, bound_object=bound)
        return Case(token, review_token(api, token.raw, [AUDIENCE]))

    legacy_secret = "doomed-legacy-token"
    resources.create_legacy_token_secret(api, namespace, "bound", legacy_secret)
    legacy_raw = resources.wait_legacy_token(api, namespace, legacy_secret)
    legacy = Token.from_raw(legacy_raw)

    cases = {
        # Legacy tokens carry no audience: reviewed for the API audiences (None) they pass.
        "legacy": Case(legacy, review_token(api, legacy_raw, None)),
        "pod": issue("api", BoundObject("Pod", "bound-pod", pod.metadata.uid), api_ns),
        "service_account": issue("doomed", None),
        "secret": issue("bound", BoundObject("Secret", "bound-secret", secret.metadata.uid)),
    }
    # The same token, presented to the secret store, is accepted before revocation.
    cases["pod"].extra["store_before"] = store_says(sut_run, cases["pod"].token.raw)[0]

    started = time.monotonic()
    resources.delete_pod(api, api_ns, "bound-pod")
    core.delete_namespaced_service_account("doomed", namespace)
    core.delete_namespaced_secret("bound-secret", namespace)
    core.delete_namespaced_secret(legacy_secret, namespace)

    def all_refused() -> bool:
        for case in cases.values():
            if case.after is None:
                audiences = None if case is cases["legacy"] else [AUDIENCE]
                result = review_token(api, case.token.raw, audiences)
                if not result.authenticated:
                    case.after, case.seconds = result, round(time.monotonic() - started, 1)
        return all(case.after is not None for case in cases.values())

    wait_until(
        all_refused, 40, "tokens still accepted 40 s after their objects were deleted", max_interval=1.0
    )
    # The callee may honour a success it cached for up to its cache_seconds after the API refuses.
    api_refused = time.monotonic()
    statuses: list[int] = []

    def callee_refuses() -> bool:
        statuses.append(store_says(sut_run, cases["pod"].token.raw)[0])
        return refused(statuses[-1])

    cache = sut_run.sut.callee.cache_seconds
    with contextlib.suppress(WaitTimeout):
        wait_until(callee_refuses, cache + 10, "callee still grants", max_interval=0.5)
    cases["pod"].extra["store_after"] = statuses[-1]
    cases["pod"].extra["store_refused_after_api_seconds"] = round(time.monotonic() - api_refused, 1)
    cases["pod"].extra["cache_seconds"] = cache

    # Same-name objects with new UIDs must not bring the tokens back.
    new_pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    new_sa = resources.create_service_account(api, namespace, "doomed")
    cases["pod"].extra["new_pod_uid"] = new_pod.metadata.uid
    cases["service_account"].extra["new_sa_uid"] = new_sa.metadata.uid
    for key in ("pod", "service_account"):
        cases[key].after_recreate = review_token(api, cases[key].token.raw, [AUDIENCE])
    yield cases
    resources.delete_pod(api, api_ns, "bound-pod")
    resources.delete_namespace(api, namespace)


# --- Real-time scenarios (full profile) ------------------------------------------------------------
#
# EXP-004 waits out a real 600 s token (~11 min) and ROT-003 waits for the kubelet's own refresh at
# 80% of the TTL (~8 min). Neither depends on the other nor on any other check, so both start
# together when the run starts (the autouse fixture below), the other checks run meanwhile, and the
# two checks, moved to the end of the run, only collect what was observed and assert on it. The
# full profile then takes about as long as its longest wait instead of the sum of both.

REAL_TIME_CHECKS = ("EXP-004", "ROT-003")


class Cancelled(Exception):
    """The run ended before a real-time scenario finished."""


def sent_jti(sut_run) -> str | None:
    """Make the caller call the callee once; the jti of the token it sent (as the token tap between
    them saw it, in process and pod mode alike, or the reference API service's /debug/token-info)."""
    call_through_caller(sut_run)
    return sut_run.caller_jti()


def observable(sut_run) -> str | None:
    """Why the token the caller sends cannot be observed here (None: it can)."""
    if not sut_run.has_caller:
        return "the SUT file names no caller (`caller:`), so there is no caller to judge"
    if sut_run.caller_jti is None:
        return (
            "the token the caller sends cannot be observed here: no token tap stands between the caller "
            "and the callee in this deployment"
        )
    return None


@pytest.fixture(scope="session")
def manual_rotation(sut_run) -> dict[str, object] | None:
    """Replace the API service's token file once, as the kubelet does at 80% of the TTL (ROT-001/2).

    Session-scoped so it happens before the refresh scenario starts watching the API service's token
    (a rotation on demand during that wait would look like the automatic refresh). None where this
    cluster's kubelet cannot be made to rotate on demand.
    """
    deployment = sut_run.deployment
    if observable(sut_run) is not None or not deployment.can_rotate_on_demand:
        return None
    old = deployment.caller.current_token()
    wait_until(
        lambda: sent_jti(sut_run) == old.jti,
        deployment.api_token_refresh_seconds * 3 + 5,
        "the caller does not send the token in its token file",
    )
    new = deployment.rotate_caller_token()
    started = time.monotonic()  # from the moment the new token is in the file
    wait_until(
        lambda: sent_jti(sut_run) == new.jti,
        deployment.api_token_refresh_seconds * 3 + 5,
        "the caller did not pick up the replaced token file within 3x its token_refresh_seconds",
    )
    picked_up = round(time.monotonic() - started, 2)
    # A restarted kubelet (local-node) probes readiness afresh: until the secret store's probe
    # passes again, its Service has no ready endpoint and the API service answers 502. Let the
    # checks that follow start from a serving deployment.
    wait_until(
        lambda: granted(call_through_caller(sut_run).status_code),
        120,
        "the API service did not get 200 from the secret store again after the token was replaced",
        max_interval=1.0,
        ignore=(requests.RequestException,),
    )
    return {"old": old, "new": new, "picked_up_seconds": picked_up}


@dataclass
class Expiry:
    """EXP-004: a real 600 s token, reviewed until the apiserver refuses it."""

    token: Token
    review_before: bool
    store_before: int
    refused_at: float | None = None
    store_after: int | None = None


@dataclass
class Refresh:
    """ROT-003: the API service's token, watched until the kubelet replaces it by itself."""

    first: Token
    refreshed_at: float | None = None
    status: int | None = None


class RealTime:
    """The real-time scenarios of this run, each in a daemon thread (a call hanging on a broken
    cluster must never keep the run from ending)."""

    JOIN_SECONDS = 15.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._results: dict[str, Any] = {}
        self._errors: dict[str, BaseException] = {}

    def start(self, check_id: str, scenario: Callable[[Callable[[], None]], Any]) -> None:
        def run() -> None:
            try:
                self._results[check_id] = scenario(self._cancelled)
            except BaseException as exc:  # handed to the check, which fails with it
                self._errors[check_id] = exc

        thread = threading.Thread(target=run, name=f"real-time {check_id}", daemon=True)
        self._threads[check_id] = thread
        thread.start()

    def _cancelled(self) -> None:
        if self._stop.is_set():
            raise Cancelled("the run ended first")

    def result(self, check_id: str, timeout: float) -> Any:
        """What the scenario of ``check_id`` observed (waits for it; re-raises its failure)."""
        thread = self._threads.get(check_id)
        if thread is None:
            raise RuntimeError(f"{check_id}: its real-time scenario was not started with the run")
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{check_id}: its real-time scenario did not end within {timeout:g} s")
        if check_id in self._errors:
            raise self._errors[check_id]
        return self._results[check_id]

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads.values():
            thread.join(self.JOIN_SECONDS)


def _expiry(k8s_cluster, sut_run) -> Callable[[Callable[[], None]], Expiry]:
    deployment = sut_run.deployment
    api = k8s_cluster.api_client
    sa = sa_ref(k8s_cluster, deployment.caller)
    token = request_token(api, sa.namespace, sa.name, audiences=[deployment.audience], expiration_seconds=600)
    state = Expiry(
        token,
        review_before=review_token(api, token.raw, [deployment.audience]).authenticated,
        store_before=store_says(sut_run, token.raw)[0],
    )

    polls = itertools.count()

    def run(cancelled: Callable[[], None]) -> Expiry:
        def refused() -> bool:
            cancelled()
            # The apiserver caches a successful authentication for 10 s, keyed by token and
            # audiences. A second, unique audience per poll makes every review a fresh validation,
            # so the refusal is seen when exp + leeway has passed, not up to 10 s later. The token's
            # own audience is still required: the review succeeds only through it.
            audiences = [deployment.audience, f"k8s-sa-poll-{next(polls)}"]
            if review_token(api, token.raw, audiences).authenticated:
                return False
            state.refused_at = time.time()
            return True

        wait_until(refused, 600 + 180, "token still accepted 3 minutes after exp", max_interval=2.0)
        # The callee may honour a success it cached for up to its cache_seconds.
        statuses: list[int] = []

        def callee_refuses() -> bool:
            cancelled()
            statuses.append(store_says(sut_run, token.raw)[0])
            return refused(statuses[-1])

        with contextlib.suppress(WaitTimeout):
            wait_until(callee_refuses, sut_run.sut.callee.cache_seconds + 15, "callee still grants")
        state.store_after = statuses[-1] if statuses else None
        return state

    return run


def _refresh(sut_run) -> Callable[[Callable[[], None]], Refresh]:
    deployment = sut_run.deployment
    state = Refresh(deployment.caller.current_token())

    def run(cancelled: Callable[[], None]) -> Refresh:
        first = state.first

        def replaced() -> bool:
            cancelled()
            return sent_jti(sut_run) not in (None, first.jti)

        wait_until(
            replaced,
            first.claims["exp"] - first.claims["iat"],
            "no refresh within the token's lifetime",
            max_interval=2.0,
        )
        state.refreshed_at = time.time()
        state.status = call_through_caller(sut_run).status_code
        return state

    return run


@pytest.fixture(scope="session")
def real_time(request, k8s_cluster, sut_run) -> Iterator[RealTime]:
    """Start the selected real-time scenarios now, in threads; the checks collect their results."""
    selected = _selected_real_time(request.session)
    scenarios = RealTime()
    try:
        if "EXP-004" in selected:
            scenarios.start("EXP-004", _expiry(k8s_cluster, sut_run))
        if "ROT-003" in selected and observable(sut_run) is None:
            request.getfixturevalue("manual_rotation")  # first, so the watch sees only the kubelet's refresh
            scenarios.start("ROT-003", _refresh(sut_run))
        yield scenarios
    finally:
        scenarios.close()


def _selected_real_time(session: pytest.Session) -> set[str]:
    """The real-time checks this run will execute (selected, not skipped)."""
    found = set()
    for item in session.items:
        mark = item.get_closest_marker("conformance")
        if mark and mark.args[0] in REAL_TIME_CHECKS and not item.get_closest_marker("skip"):
            found.add(mark.args[0])
    return found


@pytest.fixture(scope="session", autouse=True)
def start_real_time_scenarios(request) -> None:
    """Start the real-time scenarios with the first check of the run, when any is selected."""
    if _selected_real_time(request.session):
        request.getfixturevalue("real_time")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the real-time checks last: they only collect what their scenario observed meanwhile."""

    def real_time_last(item: pytest.Item) -> bool:
        mark = item.get_closest_marker("conformance")
        return bool(mark and mark.args[0] in REAL_TIME_CHECKS)

    items.sort(key=real_time_last)
