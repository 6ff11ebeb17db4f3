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
from pytest_k8s_sa.cluster.tokens import (
    APISERVER_AUTH_CACHE_SECONDS,
    BoundObject,
    Token,
    TokenReviewResult,
    request_token,
    review_token,
    wait_past_cache,
)
from pytest_k8s_sa.sut.model import DOTTED_ALLOWED_NAME

from .helpers import (
    CALLEE_EXCLUSIVE,
    allowed_token,
    call_through_caller,
    granted,
    refused,
    sa_ref,
    status_of,
    store_says,
)

SCENARIO_SECONDS = pytest.StashKey[dict[str, float]]()
"""How long each scenario (a module or session fixture, or a background scenario) took; every check
that uses one records it as ``scenario_seconds`` (``suites/conftest.py``), so a slow one shows itself."""

REVOCATION_SECONDS = 240.0
"""How long a check waits for the background revocation (its own deadlines come first)."""


@dataclass
class Case:
    token: Token
    before: TokenReviewResult
    after: TokenReviewResult | None = None
    seconds: float | None = None
    after_recreate: TokenReviewResult | None = None
    extra: dict[str, object] = field(default_factory=dict)


# --- Revocation (fast profile), in the background --------------------------------------------------
#
# Revocation waits for the apiserver's 10 s token cache. It starts with the first check
# (``start_background_scenarios``): the tokens and objects are made and deleted there, the wait runs
# in a thread, the checks that use it run late, and every other check runs meanwhile (those that
# disturb the callee first). Whoever needs the callee undisturbed, or disturbs it (its API cut, its
# review rights taken, its caller's token rotated), holds ``helpers.CALLEE_EXCLUSIVE`` meanwhile.

REVOCATION_FIXTURE = "revoked"


CALLEE_CASES = ("pod", "service_account", "secret")
"""The revocation cases whose token the callee grants until the bound object is deleted: a token of
the allowed caller bound to a pod or a Secret, and one of the allow-listed dotted account (the second
entry of ``${ALLOWED_SERVICE_ACCOUNTS}``), which the scenario creates and deletes. The legacy token is
refused by every callee anyway (no audience; LEG-003): LEG-005 judges the cluster's part."""
CALLEE_GRACE_AFTER_REVIEW_SECONDS = 10.0
"""Beyond the callee's ``cache_seconds``: how long after the apiserver refuses a revoked token the
callee may still grant it (the polling and one round trip)."""


def _quietly(step: Callable[..., object], *args: object) -> Callable[[], None]:
    """A cleanup step that ignores what is already gone."""

    def run() -> None:
        with contextlib.suppress(kubernetes.client.ApiException):
            step(*args)

    return run


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def ask_callee_until_refused(
    k8s_cluster,
    sut_run,
    cases: dict[str, Case],
    deleted_at: float,
    timeout: float,
    cancelled: Callable[[], None],
) -> None:
    """Ask the callee with each revoked token of :data:`CALLEE_CASES` it granted before the deletion
    until it refuses them all, or ``timeout``; the callee's part of each case goes into its ``extra``.

    A refusal counts only when a fresh token of the allowed caller is granted right after it: a
    refusal for another reason (an outage some other check plays) proves nothing about revocation.
    Seconds are from the moment the apiserver refused all of them (``refused_after_api_seconds``)
    and from the deletion; the last grant seen after the deletion measures the window."""
    asked = [key for key in CALLEE_CASES if granted(_int(cases[key].extra.get("store_before")))]
    started = time.monotonic()
    statuses: dict[str, list[int]] = {key: [] for key in asked}
    refused_after: dict[str, float] = {}
    last_grant: dict[str, float] = {}
    controls: list[int] = []

    def all_refused() -> bool:
        cancelled()
        now_refused = []
        for key in (k for k in asked if k not in refused_after):
            status = status_of(sut_run, cases[key].token.raw, timeout=10)
            statuses[key].append(status)
            if granted(status):
                last_grant[key] = time.time()
            elif refused(status):
                now_refused.append(key)
        if now_refused:
            controls.append(status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=10))
            if granted(controls[-1]):
                refused_after.update((key, round(time.monotonic() - started, 1)) for key in now_refused)
        return len(refused_after) == len(asked)

    with contextlib.suppress(WaitTimeout):
        wait_until(all_refused, max(timeout, 0.1), "callee still grants", max_interval=0.5)
    for key in CALLEE_CASES:
        extra = cases[key].extra
        extra["cache_seconds"] = sut_run.sut.callee.cache_seconds
        extra["callee_asked"] = key in asked
        if key not in asked:
            continue
        extra["store_after"] = statuses[key][-1] if statuses[key] else None
        extra["store_refused_after_api_seconds"] = refused_after.get(key)
        extra["store_polls"] = len(statuses[key])
        extra["control_after_refusal"] = controls[-1] if controls else None
        extra["asked_for_seconds"] = round(time.monotonic() - started, 1)
        extra["last_granted_after_deletion_seconds"] = (
            round(last_grant[key] - deleted_at, 1) if key in last_grant else None
        )
        extra["exp_after_deletion_seconds"] = round(float(cases[key].token.claims["exp"]) - deleted_at, 1)


@dataclass
class Issued:
    """The revocation's tokens, issued and reviewed (which starts the apiserver's cache for each)."""

    cases: dict[str, Case]
    reviewed_at: float
    """``time.monotonic()`` of the last review: from 10 s after it the apiserver re-validates them all."""


def issue_revocation_tokens(
    k8s_cluster, api_ns: str, caller_sa: str, audience: str, cleanup: list[Callable[[], None]]
) -> Issued:
    """Bind tokens to a pod, a service account and a secret, and review each once.

    Only the admin works here, so it can run while the deploy starts the workloads (as soon as the
    caller's namespace exists): the apiserver's 10 s cache starts with these reviews, and the
    deletion may come any time before it runs out."""
    api = k8s_cluster.api_client
    # The callee's cases use identities it grants: the allowed caller's own account (its token bound
    # to a pod and to a Secret in its namespace) and the allow-listed dotted account beside it. The
    # cleanups name the client's CoreV1Api only when they run: it may still be importing now.
    pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", caller_sa)
    cleanup.append(lambda: resources.delete_pod(api, api_ns, "bound-pod"))
    resources.create_service_account(api, api_ns, DOTTED_ALLOWED_NAME)
    cleanup.append(
        _quietly(lambda: resources.core(api).delete_namespaced_service_account(DOTTED_ALLOWED_NAME, api_ns))
    )
    secret = resources.create_secret(api, api_ns, "bound-secret", {"k": "v"})
    cleanup.append(_quietly(lambda: resources.core(api).delete_namespaced_secret("bound-secret", api_ns)))

    def issue(sa: str, bound: BoundObject | None, ns: str) -> Case:
        token = request_token(api, ns, sa, audiences=[audience], expiration_seconds=3600, bound_object=bound)
        return Case(token, review_token(api, token.raw, [audience]))

    cases = {
        "pod": issue(caller_sa, BoundObject("Pod", "bound-pod", pod.uid), api_ns),
        "service_account": issue(DOTTED_ALLOWED_NAME, None, api_ns),
        "secret": issue(caller_sa, BoundObject("Secret", "bound-secret", secret.uid), api_ns),
    }
    return Issued(cases, time.monotonic())


def _wait_until_all_refused(
    api, cases: dict[str, Case], audiences: list[str], cache_started: float, started: float, cancelled
) -> None:
    """Review each token until the apiserver refuses them all (``after``, ``seconds`` from ``started``),
    closely once its cache of their last successful review (at ``cache_started``) runs out."""

    def all_refused() -> bool:
        cancelled()
        for case in cases.values():
            if case.after is None:
                result = review_token(api, case.token.raw, audiences)
                if not result.authenticated:
                    case.after, case.seconds = result, round(time.monotonic() - started, 1)
        return all(case.after is not None for case in cases.values())

    timeout = max(0.1, started + 40 - time.monotonic())
    message = "tokens still accepted 40 s after their objects were deleted"
    wait_past_cache(all_refused, cache_started, timeout, message)


class EarlyRevocation:
    """Issues the revocation's tokens in a thread as soon as the deploy has made the identities
    (``deploy_sut(on_caller=...)``), so the apiserver's 10 s cache runs while the workloads
    start; :func:`revocation` collects them (or issues them itself where the deploy did not call)."""

    def __init__(self, k8s_cluster, audience: str) -> None:
        self._cluster = k8s_cluster
        self._audience = audience
        self.cleanup: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._issued: Issued | None = None
        self._error: BaseException | None = None

    def start(self, caller: Any) -> None:
        def run() -> None:
            try:
                self._issued = issue_revocation_tokens(
                    self._cluster, caller.namespace, caller.service_account, self._audience, self.cleanup
                )
            except BaseException as exc:  # handed to the revocation fixture, which fails with it
                self._error = exc

        self._thread = threading.Thread(target=run, name="revocation tokens", daemon=True)
        self._thread.start()

    def issued(self, api_ns: str, caller_sa: str, timeout: float = 120.0) -> Issued:
        """The tokens the thread issued (waits for it), or issued now when the deploy never called."""
        if self._thread is None:
            return issue_revocation_tokens(self._cluster, api_ns, caller_sa, self._audience, self.cleanup)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the revocation's tokens were not issued within {timeout:g} s")
        if self._error is not None:
            raise self._error
        assert self._issued is not None
        return self._issued

    def close(self) -> None:
        """Wait for the thread (its objects must exist before they are deleted), then clean up."""
        if self._thread is not None:
            self._thread.join(RealTime.JOIN_SECONDS)
        for step in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                step()


def _revocation(k8s_cluster, sut_run, early: EarlyRevocation):
    """Delete the objects the revocation's tokens are bound to, at once, here (the callee is asked
    before any check disturbs it); the returned scenario waits once until every token is refused by
    the apiserver and by the callee, then recreates same-name objects and asks both again. The same
    code judges a TokenReview callee (REV-001..005) and an offline one (REV-006): only the verdicts
    differ."""
    deployment = sut_run.deployment
    AUDIENCE = deployment.audience
    api = k8s_cluster.api_client
    core = resources.core(api)
    api_ns = deployment.caller.namespace
    caller_sa = deployment.caller.service_account

    began = time.monotonic()
    issued = early.issued(api_ns, caller_sa)
    cases = issued.cases
    # The same tokens, presented to the callee, are granted before revocation.
    with CALLEE_EXCLUSIVE:
        asked_at = time.monotonic()
        for key in CALLEE_CASES:
            cases[key].extra["store_before"] = status_of(sut_run, cases[key].token.raw)
    # The apiserver's cache of the issuing reviews, unless it ran out before the callee asked (a slow
    # rollout): then the callee's own review started a new one.
    expired = asked_at - issued.reviewed_at >= APISERVER_AUTH_CACHE_SECONDS
    cache_started = asked_at if expired else issued.reviewed_at

    started, deleted_at = time.monotonic(), time.time()
    resources.delete_pod(api, api_ns, "bound-pod")
    core.delete_namespaced_service_account(DOTTED_ALLOWED_NAME, api_ns)
    core.delete_namespaced_secret("bound-secret", api_ns)

    def run(cancelled: Callable[[], None]) -> dict[str, Case]:
        for case in cases.values():
            case.extra["deleted_at"] = deleted_at
        _wait_until_all_refused(api, cases, [AUDIENCE], cache_started, started, cancelled)
        # The callee may honour a success it cached for up to its cache_seconds after the API refuses.
        # Asked with the callee undisturbed (the lock).
        api_refused = time.monotonic()
        with CALLEE_EXCLUSIVE:
            waited_for_callee = round(time.monotonic() - api_refused, 2)
            ask_callee_until_refused(
                k8s_cluster,
                sut_run,
                cases,
                deleted_at,
                api_refused
                + sut_run.sut.callee.cache_seconds
                + CALLEE_GRACE_AFTER_REVIEW_SECONDS
                - time.monotonic(),
                cancelled,
            )
        for key in CALLEE_CASES:
            cases[key].extra["callee_asked_after_api_seconds"] = waited_for_callee

        # Same-name objects with new UIDs must not bring the tokens back, for the apiserver or the callee.
        new_pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", caller_sa)
        new_sa = resources.create_service_account(api, api_ns, DOTTED_ALLOWED_NAME)
        cases["pod"].extra["new_pod_uid"] = new_pod.uid
        cases["service_account"].extra["new_sa_uid"] = new_sa.uid
        for key in ("pod", "service_account"):
            cases[key].after_recreate = review_token(api, cases[key].token.raw, [AUDIENCE])
        with CALLEE_EXCLUSIVE:
            for key in ("pod", "service_account"):
                cases[key].extra["store_after_recreate"] = status_of(sut_run, cases[key].token.raw)
        for case in cases.values():
            case.extra["scenario_seconds"] = round(time.monotonic() - began, 2)
        return cases

    return run


@pytest.fixture(scope="session")
def early_revocation(request, k8s_cluster_serving, sut) -> Iterator[EarlyRevocation | None]:
    """The revocation's token issuing, which ``sut_run`` hands to the deploy when a selected check
    needs the revocation (None otherwise); cleans up what it made at the end of the run."""
    if not any(_uses_revocation(item) for item in _selected(request.session)):
        yield None
        return
    early = EarlyRevocation(k8s_cluster_serving, sut.callee.audience)
    try:
        yield early
    finally:
        early.close()


@pytest.fixture(scope="session")
def revocation(sut_run, early_revocation, k8s_cluster) -> Iterator[RealTime]:
    """The revocation scenario, started now in a thread; ``revoked`` collects what it observed.

    ``sut_run`` first: it deploys on the cluster while the apiserver still makes its default roles
    (``k8s_cluster`` would wait for them first)."""
    scenarios = RealTime()
    early = early_revocation or EarlyRevocation(k8s_cluster, sut_run.deployment.audience)
    try:
        try:
            scenario = _revocation(k8s_cluster, sut_run, early)
        except Exception as exc:  # the checks that use the revocation fail with it, not the first check
            failure = exc

            def scenario(cancelled: Callable[[], None]) -> dict[str, Case]:
                raise failure

        scenarios.start(REVOCATION_FIXTURE, scenario)
        yield scenarios
    finally:
        scenarios.close()
        if early_revocation is None:
            early.close()


@pytest.fixture(scope="session")
def revoked(request, revocation) -> dict[str, Case]:
    """What the revocation scenario observed (waits for it; its failure is this fixture's)."""
    cases = revocation.result(REVOCATION_FIXTURE, REVOCATION_SECONDS)
    request.config.stash.setdefault(SCENARIO_SECONDS, {})[REVOCATION_FIXTURE] = cases["pod"].extra[
        "scenario_seconds"
    ]
    return cases


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
    with CALLEE_EXCLUSIVE:  # a restarted kubelet (local-node) leaves the callee unready a while
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


EXPIRY_TOKEN_SECONDS = 600
"""EXP-004's token lifetime: the shortest a TokenRequest may ask for (EXP-001)."""
EXPIRY_REFUSED_WITHIN_SECONDS = 180.0
"""How long after ``exp`` the apiserver may still accept the token: its 60 s leeway, with margin."""
CALLEE_GRACE_SECONDS = 15.0
"""Beyond the callee's ``cache_seconds``: how long it may still grant once the apiserver refuses."""


def expiry_scenario(
    k8s_cluster,
    sut_run,
    *,
    token: Token | None = None,
    expiration_seconds: int = EXPIRY_TOKEN_SECONDS,
    refused_within_seconds: float = EXPIRY_REFUSED_WITHIN_SECONDS,
    callee_grace_seconds: float = CALLEE_GRACE_SECONDS,
) -> Callable[[Callable[[], None]], Expiry]:
    """EXP-004: present a token to the apiserver and the callee now, then (the returned function, run
    in a thread) review it until the apiserver refuses it, and ask the callee until it refuses too.

    The durations are parameters, and ``token`` may be given (default: a real TokenRequest of
    ``expiration_seconds``), so the project's own tests run the same code in seconds with a token
    minted by the cluster's key whose ``exp`` + leeway is only seconds away.
    """
    deployment = sut_run.deployment
    api = k8s_cluster.api_client
    if token is None:
        sa = sa_ref(k8s_cluster, deployment.caller)
        token = request_token(
            api, sa.namespace, sa.name, audiences=[deployment.audience], expiration_seconds=expiration_seconds
        )
    watched = token
    state = Expiry(
        watched,
        review_before=review_token(api, watched.raw, [deployment.audience]).authenticated,
        store_before=store_says(sut_run, watched.raw)[0],
    )
    # From now: exp is this far away (the whole lifetime for a fresh token), and the refusal may take
    # refused_within_seconds more.
    deadline = max(0.0, float(watched.claims["exp"]) - time.time()) + refused_within_seconds

    polls = itertools.count()

    def run(cancelled: Callable[[], None]) -> Expiry:
        def api_refuses() -> bool:
            cancelled()
            # The apiserver caches a successful authentication for 10 s, keyed by token and
            # audiences. A second, unique audience per poll makes every review a fresh validation,
            # so the refusal is seen when exp + leeway has passed, not up to 10 s later. The token's
            # own audience is still required: the review succeeds only through it.
            audiences = [deployment.audience, f"k8s-sa-poll-{next(polls)}"]
            if review_token(api, watched.raw, audiences).authenticated:
                return False
            state.refused_at = time.time()
            return True

        wait_until(
            api_refuses,
            deadline,
            f"token still accepted {refused_within_seconds:g} s after exp",
            max_interval=2.0,
        )
        # The callee may honour a success it cached for up to its cache_seconds.
        statuses: list[int] = []

        def callee_refuses() -> bool:
            cancelled()
            statuses.append(store_says(sut_run, watched.raw)[0])
            return refused(statuses[-1])

        with contextlib.suppress(WaitTimeout):
            wait_until(
                callee_refuses, sut_run.sut.callee.cache_seconds + callee_grace_seconds, "callee still grants"
            )
        state.store_after = statuses[-1] if statuses else None
        return state

    return run


def judge_expiry(state: Expiry, record: Callable[[str, object], None]) -> None:
    """EXP-004's verdict on what :func:`expiry_scenario` observed (the check and the project's tests)."""
    exp = state.token.claims["exp"]
    record("exp", exp)
    record("review_before", state.review_before)
    record("status_before", state.store_before)
    record("observed_leeway_seconds", None if state.refused_at is None else round(state.refused_at - exp, 1))
    record("status_after_expiry", state.store_after)
    assert state.review_before, "the apiserver refused the token before its exp"
    assert granted(state.store_before), (
        f"the callee did not grant the token before its exp ({state.store_before})"
    )
    assert state.refused_at is not None, "the apiserver never refused the token"
    assert state.refused_at >= exp, "refused before its exp"
    assert state.store_after is not None, "the callee was never asked after the apiserver refused the token"
    assert refused(state.store_after), "the callee still grants the token after exp and its cache_seconds"


def refresh_scenario(
    sut_run, *, within_seconds: float | None = None
) -> Callable[[Callable[[], None]], Refresh]:
    """ROT-003: note the caller's token file now, then (the returned function, run in a thread) make
    the caller call until it sends a token issued after that one, as the kubelet refreshes the file.

    ``within_seconds`` (default: the token's lifetime) bounds the wait; the project's own tests give
    the caller's file a short-lived token minted by the cluster's key and a short bound.
    """
    deployment = sut_run.deployment
    state = Refresh(deployment.caller.current_token())
    first = state.first
    # Not a refresh: no token, the token in the file now, or what the caller sends now (a caller that
    # never re-reads its file may still send an older one; that one is stale too).
    stale = {None, first.jti, sent_jti(sut_run)}
    bound = float(first.claims["exp"] - first.claims["iat"]) if within_seconds is None else within_seconds

    def run(cancelled: Callable[[], None]) -> Refresh:
        def replaced() -> bool:
            cancelled()
            return sent_jti(sut_run) not in stale

        wait_until(replaced, bound, "no refresh within the token's lifetime", max_interval=2.0)
        state.refreshed_at = time.time()
        state.status = call_through_caller(sut_run).status_code
        return state

    return run


def judge_refresh(state: Refresh, record: Callable[[str, object], None]) -> None:
    """ROT-003's verdict on what :func:`refresh_scenario` observed (the check and the project's tests)."""
    first = state.first
    lifetime = first.claims["exp"] - first.claims["iat"]
    assert state.refreshed_at is not None, "the caller never sent a refreshed token"
    refreshed_after = state.refreshed_at - first.claims["iat"]
    record("lifetime_seconds", lifetime)
    record("refreshed_after_seconds", round(refreshed_after, 1))
    record("refreshed_at_fraction", round(refreshed_after / lifetime, 3))
    record("status", state.status)
    assert refreshed_after < lifetime, "the caller sent a refreshed token only after the old one's lifetime"
    assert state.status is not None, "no call through the caller after the refresh"
    assert granted(state.status), f"the call with the refreshed token was not granted ({state.status})"


@pytest.fixture(scope="session")
def real_time(request, k8s_cluster, sut_run) -> Iterator[RealTime]:
    """Start the selected real-time scenarios now, in threads; the checks collect their results."""
    selected = _selected_real_time(request.session)
    scenarios = RealTime()
    try:
        if "EXP-004" in selected:
            scenarios.start("EXP-004", expiry_scenario(k8s_cluster, sut_run))
        if "ROT-003" in selected and observable(sut_run) is None:
            request.getfixturevalue("manual_rotation")  # first, so the watch sees only the kubelet's refresh
            scenarios.start("ROT-003", refresh_scenario(sut_run))
        yield scenarios
    finally:
        scenarios.close()


def _selected(session: pytest.Session) -> list[pytest.Item]:
    """The checks this run will execute (selected, not skipped)."""
    return [
        item
        for item in session.items
        if item.get_closest_marker("conformance") and not item.get_closest_marker("skip")
    ]


def _selected_real_time(session: pytest.Session) -> set[str]:
    """The real-time checks this run will execute (selected, not skipped)."""
    marks = (item.get_closest_marker("conformance") for item in _selected(session))
    return {mark.args[0] for mark in marks if mark and mark.args[0] in REAL_TIME_CHECKS}


def _uses_revocation(item: pytest.Item) -> bool:
    return REVOCATION_FIXTURE in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session", autouse=True)
def start_real_time_scenarios(request) -> None:
    """Start the real-time scenarios with the first check of the run, when any is selected."""
    if _selected_real_time(request.session):
        request.getfixturevalue("real_time")


@pytest.fixture(scope="session", autouse=True)
def start_background_scenarios(request) -> None:
    """Start the revocation with the first check of the run when a selected check needs it: its
    10 s wait then overlaps every other check instead of adding to them."""
    if any(_uses_revocation(item) for item in _selected(request.session)):
        request.getfixturevalue("revocation")


DISTURBING_FIXTURES = ("outages", "without_review_rights", "lying_reviews")
"""Module fixtures that disturb the callee (under ``CALLEE_EXCLUSIVE``): their checks run first, so
the disturbance is over before the background revocation asks the callee again."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the checks whose fixtures disturb the callee first (while the revocation waits for the
    apiserver), those that use the background revocation late (it has waited meanwhile), the
    real-time checks last (they only collect what their scenario observed), and the signing-key
    rotation after them (retiring a key refuses the tokens their scenarios wait on)."""

    def order(item: pytest.Item) -> int:
        mark = item.get_closest_marker("conformance")
        if mark and mark.args[0] in REAL_TIME_CHECKS:
            return 3
        if _uses_revocation(item):
            return 2
        return 0 if any(name in getattr(item, "fixturenames", ()) for name in DISTURBING_FIXTURES) else 1

    def rotates_key(item: pytest.Item) -> bool:
        return "key_rotation" in getattr(item, "fixturenames", ())

    items.sort(key=lambda item: (rotates_key(item), order(item)))
