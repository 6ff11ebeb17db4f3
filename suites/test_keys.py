"""Signing-key rotation: the callee keeps up when the cluster rotates its service-account key.

One scenario per run (per xdist worker) does the whole rotation, because each step restarts the
kube-apiserver: add a key (new tokens carry its ``kid``; old and new verify), present a new-key and
an old-key token, retire the old keys, present the old-key token again, and restore the original key
(so nothing after this module sees a rotated cluster). The checks read what it observed; the timings
are evidence.

``key_refresh_seconds`` (60 s unless the SUT file declares another value) is the allowance in both
verification modes. For a TokenReview callee the apiserver does the key work, so the callee has
nothing to refresh: the allowance bounds how long it may take to recover its own connection to the
restarted apiserver and to re-read its own credential, which the scenario re-issues with the new key
as the kubelet would (emulated kubelet: a refresh; local-node: a kubelet restart). A ``jwks`` callee
verifies offline with the key set it fetched from ``${JWKS_URL}``: within the allowance it must pick
up the new key (a refetch on the unknown ``kid``, or its periodic refresh) and, after the retirement,
drop the old one (KEY-003 adds ``cache_seconds``: a success it cached may be honoured that long). A
key set fetched once and never again fails KEY-001; one that only ever adds keys fails KEY-003. The
callee is never restarted in either mode (its process id, or its pod's uid and restarts, are evidence).

Only where the run holds the signing key's files (local, local-node): elsewhere the checks skip,
saying why. Profile ``full``: three apiserver restarts cost 9-19 s each on the loaded 2-core CI VM
(51 s for the scenario at load average 9; a few seconds each on a quiet machine), against the fast
profile's 21 s; in the full profile they are lost in the real-time waits (see BENCHMARKS.md).
The scenario runs after the real-time scenarios (``suites/scenarios.py`` orders it last): a retired
key would refuse the tokens those wait on. Under xdist the plugin runs it alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import Token, header_kid
from pytest_k8s_sa.deploy.sut_deploy import SutRun

from .helpers import callee_audience_token, granted, refused, status_of

KEY_REFRESH_SECONDS = 60.0
"""The default of ``callee.key_refresh_seconds``: how long a callee may take to honour a new key or
stop trusting a retired one."""
SLACK_SECONDS = 5.0
"""Polling granularity and the round trip of one question, on top of the declared allowances."""


def key_refresh_seconds(run: SutRun) -> float:
    return float(getattr(run.sut.callee, "key_refresh_seconds", KEY_REFRESH_SECONDS))


@dataclass
class Outcome:
    """What the callee answered for one token, polled until ``wanted`` or the deadline."""

    kid: str | None
    reached: bool
    seconds: float
    statuses: list[int] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "reached": self.reached,
            "seconds": self.seconds,
            "statuses_tail": self.statuses[-5:],
            "polls": len(self.statuses),
        }


def _poll(run: SutRun, tokens: Any, wanted: Any, timeout: float) -> Outcome:
    """Ask the callee with ``tokens()`` (a fresh token each time, or one) until ``wanted(status)``."""
    statuses: list[int] = []
    kids: list[str | None] = []
    started = time.monotonic()

    def done() -> bool:
        token: Token = tokens()
        kids.append(header_kid(token.raw))
        statuses.append(status_of(run, token.raw, timeout=10))
        return bool(wanted(statuses[-1]))

    try:
        wait_until(done, timeout, "not yet", max_interval=1.0)
        reached = True
    except WaitTimeout:
        reached = False
    return Outcome(kids[-1] if kids else None, reached, round(time.monotonic() - started, 2), statuses)


@dataclass
class KeyScenario:
    original_kid: str
    added: Any
    retired: Any
    restored: Any
    credential_refresh: str
    callee_pid_before: str | None
    callee_pid_after: str | None
    key_refresh_seconds: float
    cache_seconds: float
    new_key: Outcome
    old_key_overlap: Outcome
    old_key_retired: Outcome
    new_key_retired: Outcome


def _refresh_credentials(cluster: Cluster, run: SutRun) -> str:
    """Re-issue the workloads' own tokens with the new key, as their kubelet would (eventually)."""
    deployment = run.deployment
    projectors = [w.projector for w in (deployment.callee, deployment.caller) if w.projector is not None]
    if projectors:
        for projector in projectors:
            projector.refresh_now()
        return "emulated kubelet refresh of the callee's and caller's token files"
    if cluster.node_control is not None:
        cluster.node_control.restart_kubelet()
        return "kubelet restart (every projected token on the node requested again)"
    return "none (the kubelet refreshes at 80% of the token's lifetime)"


def _callee_pid(cluster: Cluster, run: SutRun) -> str | None:
    """The callee's process id (process mode), or its pod's uid and container restarts (pod mode):
    the same value before and after means it was not restarted."""
    store = run.deployment.callee
    if store.process is not None:
        return str(store.process.pid) if store.process.running() else None
    if store.pod is None:
        return None
    pod = resources.core(cluster.api_client).read_namespaced_pod(store.pod.name, store.namespace)
    restarts = sum(c.restart_count for c in pod.status.container_statuses or [])
    return f"pod uid {pod.metadata.uid}, container restarts {restarts}"


@pytest.fixture(scope="module")
def key_rotation(k8s_cluster: Cluster, sut_run: SutRun) -> KeyScenario:
    control = k8s_cluster.key_control
    if control is None:
        pytest.skip(k8s_cluster.key_control_missing)
    run = sut_run
    api = run.deployment.caller
    refresh = key_refresh_seconds(run)
    cache = float(run.sut.callee.cache_seconds)
    original_kid = control.signing_kid()
    # Never shown to the callee before the overlap: it must review it then, not answer from a cache.
    old_token = callee_audience_token(k8s_cluster, run, api)
    pid_before = _callee_pid(k8s_cluster, run)
    try:
        added = control.add_signing_key()
        how = _refresh_credentials(k8s_cluster, run)
        fresh = lambda: callee_audience_token(k8s_cluster, run, api)  # noqa: E731
        new_key = _poll(run, fresh, granted, refresh + SLACK_SECONDS)
        overlap = _poll(run, lambda: old_token, granted, refresh + SLACK_SECONDS)
        retired = control.retire_old_keys()
        window = refresh + cache + SLACK_SECONDS
        old_retired = _poll(run, lambda: old_token, refused, window)
        # The control: fresh new-key tokens are still granted (a callee that lost its own credential
        # refuses everything, which is no evidence about the retired key).
        new_retired = _poll(run, fresh, granted, window)
    finally:
        restored = control.restore_original_key()
    return KeyScenario(
        original_kid,
        added,
        retired,
        restored,
        how,
        pid_before,
        _callee_pid(k8s_cluster, run),
        refresh,
        cache,
        new_key,
        overlap,
        old_retired,
        new_retired,
    )


def _common(check: Any, scenario: KeyScenario, run: SutRun) -> None:
    check.fidelity = run.deployment.fidelity  # the workloads' tokens were re-issued by its kubelet
    check.record("verification", run.sut.callee.verification)
    check.record("original_kid", scenario.original_kid)
    check.record("added_kid", scenario.added.signing_kid)
    check.record("apiserver_restart_seconds", scenario.added.restart_seconds)
    check.record("credential_refresh", scenario.credential_refresh)
    check.record("key_refresh_seconds", scenario.key_refresh_seconds)


@pytest.mark.conformance(
    "KEY-001", "a token signed by a new key is granted, the callee not restarted", profile="full", minutes=1
)
def test_new_key_is_honoured(check, sut_run, key_rotation):
    scenario = key_rotation
    _common(check, scenario, sut_run)
    check.record("new_key_token", scenario.new_key.evidence())
    check.record("callee_before", scenario.callee_pid_before)
    check.record("callee_after", scenario.callee_pid_after)
    assert scenario.new_key.kid == scenario.added.signing_kid
    assert scenario.callee_pid_before == scenario.callee_pid_after, "the callee was restarted"
    assert scenario.new_key.reached, (
        f"no grant for a new-key token within key_refresh_seconds ({scenario.key_refresh_seconds:g} s)"
    )


@pytest.mark.conformance(
    "KEY-002", "during the overlap a token signed by the old key is still granted", profile="full", minutes=1
)
def test_old_key_still_granted_during_overlap(check, sut_run, key_rotation):
    scenario = key_rotation
    _common(check, scenario, sut_run)
    check.record("old_key_token", scenario.old_key_overlap.evidence())
    assert scenario.old_key_overlap.kid == scenario.original_kid
    assert scenario.old_key_overlap.reached, "an old-key token was refused while the old key still verifies"


@pytest.mark.conformance(
    "KEY-003",
    "after the old keys are retired, a token signed by one is refused within the allowance",
    profile="full",
    minutes=1,
)
def test_retired_key_refused(check, sut_run, key_rotation):
    scenario = key_rotation
    _common(check, scenario, sut_run)
    check.record("retire_restart_seconds", scenario.retired.restart_seconds)
    check.record("verifying_kids_after_retire", scenario.retired.verifying_kids)
    check.record("allowed_seconds", scenario.key_refresh_seconds + scenario.cache_seconds)
    check.record("old_key_token", scenario.old_key_retired.evidence())
    check.record("new_key_control", scenario.new_key_retired.evidence())
    assert scenario.original_kid not in scenario.retired.verifying_kids
    assert scenario.old_key_retired.reached, (
        "the callee still grants a token signed by a retired key beyond key_refresh_seconds + cache_seconds"
    )
    assert refused(scenario.old_key_retired.statuses[-1])
    assert scenario.new_key_retired.reached, (
        "the callee grants no fresh new-key token either: it lost its own API credential or connection, "
        "so its refusals say nothing about the retired key"
    )
