"""Start the local cluster while pytest still imports and collects (``--k8s-start-early``).

Before the first fixture asks for a cluster, pytest imports every plugin and conftest (the kubernetes
client alone takes ~0.4 s) and collects the tests: about two seconds on 2 cores in which
kube-apiserver could already boot on the other core. With the option, the entry point
(:mod:`.entry`) hands the start to :class:`EarlyCluster`, whose thread starts the control plane
before the rest of the plugin is imported; ``k8s_cluster_serving`` then takes the started cluster
instead of starting one.

The thread stays alive until the cluster is destroyed: the components get SIGKILL when the thread
that started them ends (``PR_SET_PDEATHSIG``), which is what stops them if pytest itself is killed.

It starts only where nothing can go differently from a start by the fixture: the local provider, its
binaries built already (a first run builds them in the foreground, with progress lines), no xdist
(workers share one cluster their own way), no ``--keep-cluster`` (a kept folder belongs under
pytest's basetemp) and a run that runs tests (not ``--collect-only``, ``--help``, ...).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import pytest

from ..base.errors import K8sSAError
from ..providers.base import ClusterInfo, Provider, ServingStart
from ..providers.settings import Settings
from . import options

LAUNCH_WAIT = 10.0
"""Seconds :func:`begin` holds pytest back until kube-apiserver is spawned (it takes ~0.3 s)."""
START_TIMEOUT = 120.0
"""Seconds the fixture waits for the early start to finish (the provider's own deadlines are shorter)."""

NO_TESTS_RUN = (
    "collectonly",
    "help",
    "version",
    "showfixtures",
    "show_fixtures_per_test",
    "markers",
    "setupplan",
)
"""pytest's options (their ``dest``) for runs that run no test, so need no cluster."""


def why_not(namespace: Any, settings: Settings) -> str | None:
    """Why this run does not start early (None: it does); ``namespace``: pytest's known arguments."""
    if settings.provider != "local":
        return f"the {settings.provider} provider does not start early"
    if settings.keep_cluster:
        return "--keep-cluster keeps the cluster's folder under pytest's basetemp"
    if (
        os.environ.get("PYTEST_XDIST_WORKER")
        or getattr(namespace, "numprocesses", None)
        or getattr(namespace, "tx", None)
    ):
        return "xdist workers share one cluster, started by the first worker that needs it"
    for dest in NO_TESTS_RUN:
        if getattr(namespace, dest, None):
            return f"a run with --{dest.replace('_', '-')} runs no test"
    return None


class EarlyCluster:
    """One local cluster started in a thread of its own, taken by the session's cluster fixture."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.taken = False
        self.skipped: str | None = None
        """Why the thread started nothing after all (binaries not built yet); the fixture starts it."""
        self._provider: Provider | None = None
        self._info: ClusterInfo | None = None
        self._error: BaseException | None = None
        self._started = threading.Event()
        self._launched = threading.Event()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._run, name="k8s-sa early start", daemon=True)

    def begin(self, launch_wait: float = LAUNCH_WAIT) -> None:
        """Start the thread and wait until it has spawned kube-apiserver (or given up).

        Waiting costs pytest ~0.3 s but wins more: this thread's imports and certificates are Python
        work, which would otherwise share the interpreter with pytest's own imports and take twice
        as long; once spawned, the apiserver boots on the other core while pytest goes on."""
        self._thread.start()
        self._launched.wait(launch_wait)

    def _run(self) -> None:
        try:
            # Imported here, in this thread, while the main thread imports the rest of pytest's plugins.
            from ..base.errors import BinaryNotFoundError
            from ..components.binaries import DEFAULT_K8S_VERSION, find_binaries
            from ..providers.registry import build_provider

            try:
                find_binaries(
                    self.settings.k8s_version or DEFAULT_K8S_VERSION, self.settings.bin_dir, build=False
                )
            except BinaryNotFoundError:
                self.skipped = "the binaries are not built yet"
                return
            provider = build_provider(self.settings.provider, self.settings)
            if isinstance(getattr(provider, "launched", None), threading.Event):
                provider.launched = self._launched  # type: ignore[attr-defined]
            self._provider = provider
            self._info = (
                provider.create_serving() if isinstance(provider, ServingStart) else provider.create()
            )
        except BaseException as exc:  # handed to the fixture, which reports it as a failed start
            self._error = exc
        finally:
            self._launched.set()
            self._started.set()
        self._released.wait()  # the components die with this thread: it ends after they are stopped

    def take(self, timeout: float = START_TIMEOUT) -> tuple[Provider, ClusterInfo] | None:
        """The started cluster (waits for the start), or None where the thread started nothing
        (:attr:`skipped`): then the fixture starts one as usual. Raises what the start raised."""
        if not self._started.wait(timeout):
            raise K8sSAError(f"the local cluster started early did not serve within {timeout:g} s")
        if self._error is not None:
            raise self._error
        if self._provider is None or self._info is None:
            return None
        self.taken = True
        return self._provider, self._info

    def release(self) -> None:
        """Destroy the cluster (after a start in progress has finished), then let the thread end.
        Safe to call twice; the session's end calls it whether or not a test took the cluster."""
        if not self._thread.is_alive() and self._released.is_set():
            return
        self._started.wait(START_TIMEOUT)
        provider, self._provider = self._provider, None
        try:
            if provider is not None:
                provider.destroy()
        finally:
            self._released.set()
            self._thread.join(10.0)


EARLY_KEY = pytest.StashKey[EarlyCluster]()


def begin(config: pytest.Config) -> EarlyCluster | None:
    """Start the cluster now if ``--k8s-start-early`` asks for it and this run allows it (:func:`why_not`).

    Called from ``pytest_load_initial_conftests``, so it reads pytest's known arguments, not
    ``config.option`` (not parsed yet). A bad option value starts nothing here: ``pytest_configure``
    reports it as usual.
    """
    namespace = config.known_args_namespace

    def value(dest: str) -> Any:
        option = options.BY_DEST[dest]
        return options.lookup(option, getattr(namespace, dest, None), config.getini(option.ini))

    try:
        if not value("k8s_start_early"):
            return None
        settings = options.build_settings(value)
    except K8sSAError:
        return None
    if why_not(namespace, settings) is not None:
        return None
    # work_dir None: a temporary folder of its own (pytest's basetemp does not exist yet), named
    # k8s-sa-<pid>-..., which the provider removes with the cluster.
    early = EarlyCluster(dataclasses.replace(settings, work_dir=None, owner_pid=os.getpid()))
    early.begin()
    config.stash[EARLY_KEY] = early
    config.add_cleanup(early.release)
    return early
