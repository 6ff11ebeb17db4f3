"""The full profile's real-time scenarios, run end to end in seconds against a passing and a broken SUT.

EXP-004 waits out a real 600 s token and ROT-003 waits for the kubelet's refresh at 80 % of it: about
11 minutes, so only the full profile runs them, and a bug on their path (EXP-004 once errored after
its wait because a local name hid the ``refused`` helper) stayed unseen. Their scenario functions in
``suites/scenarios.py`` take their durations as parameters; here they run the same code, and the same
verdicts (``judge_expiry``, ``judge_refresh``) as the checks, with tokens minted by the cluster's own
key whose ``exp`` is seconds away, on the local provider:

* EXP-004 passes the reference callee, and fails a callee that caches a success past the token's
  ``exp`` (``tests/mutants/caches_successes_forever``);
* ROT-003 passes the reference caller, whose file the emulated kubelet refreshes at 80 % of a 60 s
  token, and fails a caller that never re-reads its token file (``tests/mutants/caller_reads_token_once``).

The SUT runs as local processes (:func:`deploy_sut` in process mode, as the suite deploys it on the local
provider), called in this process: no inner pytest run is needed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.tokens import Token
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy.sut_deploy import SutRun, deploy_sut
from pytest_k8s_sa.plugin.fixtures import MintTokenFactory
from pytest_k8s_sa.sut.model import Sut, load, reference
from suites.helpers import sa_ref
from suites.scenarios import expiry_scenario, judge_expiry, judge_refresh, refresh_scenario

MUTANTS = Path(__file__).resolve().parent / "mutants"
LEEWAY_SECONDS = 60
"""The apiserver accepts a token until 60 s after its ``exp`` (clock-skew leeway)."""
ACCEPTED_FOR_SECONDS = 10
"""EXP-004 here: the apiserver accepts the minted token for this long after minting, then refuses it."""
REFRESH_LIFETIME_SECONDS = 60
REFRESH_DUE_IN_SECONDS = 8
"""ROT-003 here: a 60 s token minted 40 s ago, so its refresh at 80 % (48 s) is due in 8 s."""
REFRESH_WITHIN_SECONDS = 30.0


def never_cancelled() -> None:
    """The scenarios' cancellation hook: nothing cancels a run here."""


def recorder(evidence: dict[str, object]) -> Callable[[str, object], None]:
    return evidence.__setitem__


def deployed(cluster: Cluster, names: Names, workdir: Path, sut: Sut) -> Iterator[SutRun]:
    if cluster.capabilities.runs_pods:
        pytest.skip(f"runs the SUT as local processes (the local provider), not on {cluster.provider}")
    with deploy_sut(cluster, names, workdir, sut) as run:
        yield run


@pytest.fixture(scope="module")
def reference_run(
    k8s_cluster: Cluster, k8s_names: Names, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SutRun]:
    """The reference workloads (callee and caller), as the suite deploys them on the local provider."""
    yield from deployed(k8s_cluster, k8s_names, tmp_path_factory.mktemp("reference"), reference())


@pytest.fixture
def mutant_run(
    request: pytest.FixtureRequest, k8s_cluster: Cluster, k8s_names: Names, tmp_path: Path
) -> Iterator[SutRun]:
    """The mutant named by the test's parameter (a folder of tests/mutants), deployed alike."""
    yield from deployed(k8s_cluster, k8s_names, tmp_path, load(MUTANTS / request.param / "sut.yaml"))


def expiring_token(cluster: Cluster, run: SutRun, mint_token: MintTokenFactory) -> Token:
    """A token of the allowed caller for the callee that the apiserver accepts for only
    ``ACCEPTED_FOR_SECONDS`` more: its ``exp`` is already past, by less than the leeway."""
    now = dt.datetime.now(dt.UTC)
    return mint_token(
        sa_ref(cluster, run.deployment.caller),
        audiences=[run.deployment.audience],
        issued_at=now - dt.timedelta(minutes=10),
        expires_at=now - dt.timedelta(seconds=LEEWAY_SECONDS - ACCEPTED_FOR_SECONDS),
    )


def install_refresh_due_soon(cluster: Cluster, run: SutRun, mint_token: MintTokenFactory) -> Token:
    """Put a short-lived minted token in the caller's token file, through the emulated kubelet, which
    then refreshes it (a real TokenRequest) at 80 % of its lifetime, ``REFRESH_DUE_IN_SECONDS`` from now."""
    projector = run.deployment.caller.projector
    assert projector is not None, "the caller has no emulated kubelet"
    now = dt.datetime.now(dt.UTC)
    issued = now - dt.timedelta(seconds=0.8 * REFRESH_LIFETIME_SECONDS - REFRESH_DUE_IN_SECONDS)
    token = mint_token(
        sa_ref(cluster, run.deployment.caller),
        audiences=[run.deployment.audience],
        issued_at=issued,
        expires_at=issued + dt.timedelta(seconds=REFRESH_LIFETIME_SECONDS),
    )
    projector.install(token)
    return token


def test_expiry_passes_a_callee_that_refuses_after_exp(
    k8s_cluster: Cluster, reference_run: SutRun, mint_token: MintTokenFactory
) -> None:
    token = expiring_token(k8s_cluster, reference_run, mint_token)
    scenario = expiry_scenario(k8s_cluster, reference_run, token=token, refused_within_seconds=60)
    state = scenario(never_cancelled)
    evidence: dict[str, object] = {}
    judge_expiry(state, recorder(evidence))
    assert state.token is token


@pytest.mark.parametrize("mutant_run", ["caches_successes_forever"], indirect=True)
def test_expiry_fails_a_callee_that_grants_past_exp(
    k8s_cluster: Cluster, mutant_run: SutRun, mint_token: MintTokenFactory
) -> None:
    token = expiring_token(k8s_cluster, mutant_run, mint_token)
    scenario = expiry_scenario(
        k8s_cluster, mutant_run, token=token, refused_within_seconds=60, callee_grace_seconds=5
    )
    state = scenario(never_cancelled)
    assert state.refused_at is not None, "the apiserver itself should have refused the token"
    with pytest.raises(AssertionError, match="still grants the token after exp"):
        judge_expiry(state, recorder({}))


def test_refresh_passes_a_caller_that_rereads_its_token_file(
    k8s_cluster: Cluster, reference_run: SutRun, mint_token: MintTokenFactory
) -> None:
    minted = install_refresh_due_soon(k8s_cluster, reference_run, mint_token)
    scenario = refresh_scenario(reference_run, within_seconds=REFRESH_WITHIN_SECONDS)
    state = scenario(never_cancelled)
    evidence: dict[str, object] = {}
    judge_refresh(state, recorder(evidence))
    assert state.first.jti == minted.jti
    # The emulated kubelet refreshed at 80 % of the minted token's lifetime; the caller followed.
    assert 0.8 <= float(str(evidence["refreshed_at_fraction"])) < 1.0


@pytest.mark.parametrize("mutant_run", ["caller_reads_token_once"], indirect=True)
def test_refresh_fails_a_caller_that_never_rereads_its_token_file(
    k8s_cluster: Cluster, mutant_run: SutRun, mint_token: MintTokenFactory
) -> None:
    minted = install_refresh_due_soon(k8s_cluster, mutant_run, mint_token)
    scenario = refresh_scenario(mutant_run, within_seconds=REFRESH_WITHIN_SECONDS)
    with pytest.raises(WaitTimeout, match="no refresh within"):
        scenario(never_cancelled)
    projector = mutant_run.deployment.caller.projector
    assert projector is not None
    # The file was refreshed (the emulated kubelet did its part): only the caller failed to follow.
    assert projector.current.jti != minted.jti
