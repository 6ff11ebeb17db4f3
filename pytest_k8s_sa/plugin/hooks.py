"""The pytest plugin's hooks and cluster fixture (registered by the entry point, :mod:`.entry`).

The library does the work; this module decides which provider to use, keeps one cluster per run
(shared by pytest-xdist workers), cleans up, and attaches component logs to failed tests.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import os
import signal
import threading
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..base.errors import K8sSAError
from ..base.rwlock import RunLock, run_lock_path
from ..cluster import resources
from ..cluster.client_import import import_api_classes_in_background
from ..cluster.cluster import Cluster
from ..providers.base import Provider, ServingStart
from ..providers.local import stop_shared
from ..providers.registry import build_provider
from ..sut.model import SutError, load, reference
from . import options
from .early import EARLY_KEY
from .fixtures import (  # noqa: F401 - fixtures are registered by being in this module
    CLUSTER_KEY,
    FAILED_KEY,
    RUN_ID_KEY,
    SETTINGS_KEY,
    SUT_KEY,
    k8s_client,
    k8s_names,
    k8s_namespace,
    k8s_pod,
    k8s_service_account,
    legacy_token,
    mint_token,
    projected_token,
    rotate_signing_key,
    token_review,
    token_reviewer,
)

LOG_TAIL_LINES = 40
ENTRY = "pytest_k8s_sa.plugin.entry"

# Conformance checks (marker, `check` fixture, JSON report) are a plugin module of their own.
pytest_plugins = ["pytest_k8s_sa.plugin.conformance"]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """The options come with the entry point (:mod:`.entry`); this module alone (``-p
    pytest_k8s_sa.plugin.hooks`` with plugin autoload off) registers them itself."""
    if not any(getattr(p, "__name__", None) == ENTRY for p in pluginmanager.get_plugins()):
        options.register(parser, pluginmanager)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = options.resolve(config)
    sut_file = options.sut_path(config)
    try:
        config.stash[SUT_KEY] = load(sut_file) if sut_file is not None else reference()
    except SutError as exc:
        raise pytest.UsageError(str(exc)) from None
    if _is_xdist_worker(config):
        run_id = config.workerinput.get("k8s_sa_run_id") or config.workerinput["testrunuid"][:8]  # type: ignore[attr-defined]
    else:
        run_id = uuid.uuid4().hex[:8]
    config.stash[RUN_ID_KEY] = run_id
    _stop_on_sigterm()
    _exit_without_a_final_collection()


_EXIT_HOOKED: list[bool] = []


def _exit_without_a_final_collection() -> None:
    """Freeze the heap when the interpreter exits, once per process.

    The interpreter's last garbage collection walks every object still alive, and the kubernetes
    client's models and pydantic's schemas are many: about 0.5 s of a run. Frozen objects are skipped
    (``gc.freeze``); they are still freed by reference counting, and the OS reclaims the rest. An
    ``atexit`` hook rather than ``pytest_unconfigure``: a pytest run inside a test process (pytester)
    must not freeze the outer process's heap.
    """
    if not _EXIT_HOOKED:
        _EXIT_HOOKED.append(True)
        atexit.register(gc.freeze)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so pytest tears down fixtures (and clusters) as for Ctrl-C."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: give every worker the same run id (labels, names, cleanup)."""
    node.workerinput["k8s_sa_run_id"] = node.config.stash[RUN_ID_KEY]


def _shared_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base temp folder of the whole run: a worker's parent folder under xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if _is_xdist_worker(config) else base


def make_provider(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Provider:
    """The provider of this run, from the registry; under xdist the local cluster is shared."""
    worker = _is_xdist_worker(config)
    settings = dataclasses.replace(
        config.stash[SETTINGS_KEY],
        work_dir=str(_shared_dir(config, tmp_path_factory)),
        owner_pid=os.getppid() if worker else os.getpid(),
        shared=worker,
    )
    try:
        return build_provider(settings.provider, settings)
    except K8sSAError as exc:
        raise pytest.UsageError(str(exc)) from None


def _progress_visible(config: pytest.Config) -> contextlib.AbstractContextManager[None]:
    """Let the provider's progress lines through pytest's output capture while it starts.

    A first run builds binaries and images for minutes; captured, those ``[k8s-sa] ...`` lines would
    only show if the start failed, and the terminal would sit silent meanwhile.
    """
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[None] = capture.global_and_fixture_disabled()
    return manager


@pytest.fixture(scope="session")
def k8s_cluster(k8s_cluster_serving: Cluster) -> Cluster:
    """The cluster of this run: started (local, kind) or attached to (kubeconfig), and ready.

    Provides the kubeconfig path, an admin ``api_client``, the provider, server version, issuer,
    API audiences and ``capabilities`` (signing key at hand, pods run by a kubelet).
    """
    try:
        k8s_cluster_serving.wait_ready()
    except K8sSAError as exc:
        pytest.fail(f"[k8s-sa] {exc}", pytrace=False)
    return k8s_cluster_serving


@pytest.fixture(scope="session")
def k8s_cluster_serving(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The same cluster as ``k8s_cluster``, handed out as soon as its apiserver serves the admin.

    On the local provider that is about 2 s before ``k8s_cluster``: kube-apiserver still creates its
    default RBAC roles, so an identity bound to one (``system:auth-delegator``) may be refused until
    ``wait_ready()`` returns. For setups that start with admin work (namespaces, service accounts,
    tokens) and call ``wait_ready()`` before anything else; elsewhere the same as ``k8s_cluster``.
    """
    config = request.config
    early = config.stash.get(EARLY_KEY, None)
    import_api_classes_in_background()  # overlaps the client's slow first import with the start
    failure = None
    try:
        taken = early.take() if early is not None else None
        if taken is not None:
            provider, info = taken  # started while pytest imported and collected (--k8s-start-early)
        else:
            provider = make_provider(config, tmp_path_factory)
            with _progress_visible(config):
                info = provider.create_serving() if isinstance(provider, ServingStart) else provider.create()
    except K8sSAError as exc:
        failure = str(exc)  # failed outside the handler, so the report does not repeat it as a chain
    if failure is not None:
        if early is not None:
            early.release()
        pytest.fail(f"[k8s-sa] {failure}", pytrace=False)
    cluster = Cluster(info, config.stash[RUN_ID_KEY])
    config.stash[CLUSTER_KEY] = cluster
    try:
        yield cluster
    finally:
        try:
            if not info.capabilities.owns_cluster:
                # Delete what this run created on a cluster that outlives it, then wait.
                resources.delete_run_objects(cluster.api_client, cluster.run_id, wait=120.0)
        finally:
            cluster.close()
            del config.stash[CLUSTER_KEY]
            if taken is not None and early is not None:
                early.release()  # destroys it, then ends the thread its processes die with
            else:
                provider.destroy()


ROTATING_FIXTURES = ("rotate_signing_key", "key_rotation")
"""Fixtures that change the shared cluster under every worker: tests using them run alone
(``key_rotation``: the conformance suite's KEY scenario)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    """xdist workers share one cluster: a test that rotates its signing key (an apiserver restart,
    other tokens refused) holds the run's lock exclusively, every other test holds it shared, from
    its setup to its teardown. Without xdist nothing runs concurrently and no lock is taken."""
    config = item.config
    if not _is_xdist_worker(config):
        return (yield)
    lock = RunLock(run_lock_path(config.stash[RUN_ID_KEY]))
    names = getattr(item, "fixturenames", ())
    exclusive = any(name in names for name in ROTATING_FIXTURES)
    with lock.exclusive() if exclusive else lock.shared():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        item.stash[FAILED_KEY] = True
        cluster = item.config.stash.get(CLUSTER_KEY, None)
        if cluster is not None:
            if cluster.info.refresh_logs is not None:
                try:
                    cluster.info.refresh_logs()
                except Exception as exc:  # the report must not fail because the logs could not be read
                    report.sections.append(("k8s-sa logs", f"(could not copy the logs: {exc})"))
            for name, path in sorted(cluster.info.log_paths.items()):
                report.sections.append((f"k8s-sa {name} log (last {LOG_TAIL_LINES} lines)", _tail(path)))
    return report


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:]) + f"\n(full log: {path})"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist controller: stop the shared local control plane the workers started."""
    config = session.config
    if _is_xdist_controller(config) and not _is_xdist_worker(config):
        for path in (run_lock_path(config.stash[RUN_ID_KEY]),):
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".gate").unlink(missing_ok=True)
        factory = getattr(config, "_tmp_path_factory", None)
        if factory is not None:
            settings = config.stash[SETTINGS_KEY]
            stop_shared(factory.getbasetemp(), keep=settings.keep_cluster)
