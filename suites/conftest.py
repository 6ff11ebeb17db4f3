"""The conformance suite's fixtures: the deployed system under test and helpers shared by the checks.

Run it with ``pytest suites`` or ``k8s-sa conformance`` (see the README); it uses the pytest-k8s-sa
plugin's fixtures, ``--k8s-provider`` / ``--kind-cluster`` / ``--kubeconfig`` to choose the cluster and
``--sut FILE`` to choose what it judges (default: this project's reference workloads).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.cluster.cluster import Cluster
from pytest_k8s_sa.cluster.types import Names
from pytest_k8s_sa.deploy import Deployment
from pytest_k8s_sa.deploy.sut_deploy import SutRun, deploy_sut
from pytest_k8s_sa.plugin.conformance import CHECK_KEY
from pytest_k8s_sa.plugin.fixtures import SUT_KEY
from pytest_k8s_sa.sut.model import Sut

# Session fixtures shared by several check modules, the scenarios started with the run (the
# revocation in the background; the real-time scenarios of the full profile) and the hook that runs
# their checks late:
from .scenarios import (  # noqa: F401
    SCENARIO_SECONDS,
    EarlyRevocation,
    early_revocation,
    manual_rotation,
    pytest_collection_modifyitems,
    real_time,
    revocation,
    revoked,
    start_background_scenarios,
    start_real_time_scenarios,
)

SESSION_INFRASTRUCTURE = frozenset(
    {
        "k8s_cluster",
        "k8s_cluster_serving",
        "sut",
        "sut_run",
        "early_revocation",
        "deployment",
        "start_background_scenarios",
        "start_real_time_scenarios",
        "revocation",
    }
)
"""Shared by every check (their time is in ACC-001's ``deploy_timings``), or only starting a scenario
(whose own time is recorded by the fixture that collects it: ``revoked``)."""


class _ScenarioTimer:
    """Times every module or session fixture (a scenario checks share) as it is set up. A plugin, not
    a conftest hook: a session fixture's setup goes through the session's hooks, which do not include
    this folder's conftest."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
        started = time.monotonic()
        result = yield
        if fixturedef.scope != "function" and fixturedef.argname not in SESSION_INFRASTRUCTURE:
            timings = request.config.stash.setdefault(SCENARIO_SECONDS, {})
            timings.setdefault(fixturedef.argname, round(time.monotonic() - started, 2))
        return result


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("k8s-sa-scenario-timer"):
        config.pluginmanager.register(_ScenarioTimer(), "k8s-sa-scenario-timer")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Each check records how long the scenarios it uses took (``scenario_seconds``): a scenario
    that makes the run slow shows itself in the report."""
    entry = item.stash.get(CHECK_KEY, None)
    timings = item.config.stash.get(SCENARIO_SECONDS, {})
    used = {name: timings[name] for name in getattr(item, "fixturenames", ()) if timings.get(name, 0) >= 0.1}
    if entry is not None and used:
        entry.record("scenario_seconds", used)
    return (yield)


@pytest.fixture(scope="session")
def sut(request: pytest.FixtureRequest) -> Sut:
    """What this run judges: the ``--sut`` file, or the built-in description of the reference workloads."""
    return request.config.stash[SUT_KEY]


@pytest.fixture(scope="session")
def sut_run(
    k8s_cluster_serving: Cluster,
    k8s_names: Names,
    tmp_path_factory: pytest.TempPathFactory,
    sut: Sut,
    early_revocation: EarlyRevocation | None,  # noqa: F811 - the fixture imported above
) -> Iterator[SutRun]:
    """The SUT deployed once per run (per xdist worker) by
    :func:`~pytest_k8s_sa.deploy.sut_deploy.deploy_sut`: as pods where a kubelet runs them, else as
    local processes (the reference workloads too).

    It starts on a cluster that may still be making its default roles (the deploy waits for them
    before the workloads start) and tells the revocation scenario the identities as soon as they
    exist: the apiserver's 10 s cache, which every revocation check waits out, then runs while the
    workloads start."""
    manager = deploy_sut(
        k8s_cluster_serving,
        k8s_names,
        tmp_path_factory.mktemp("sut"),
        sut,
        on_caller=early_revocation.start if early_revocation is not None else None,
    )
    stack = contextlib.ExitStack()
    try:
        run = stack.enter_context(manager)
    except K8sSAError as exc:
        failure = str(exc)  # failed outside the handler, so the report does not repeat it as a chain
    else:
        with stack:
            yield run
        return
    pytest.fail(f"[k8s-sa] the system under test did not deploy:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def deployment(sut_run: SutRun) -> Deployment:
    """The workloads: ``secret_store`` is the callee, ``api`` the allowed caller (a workload if the SUT
    has one, else only its identity), ``data_store`` the intruder identity the suite plays."""
    return sut_run.deployment
