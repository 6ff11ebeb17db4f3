"""The options: one table, one help string per option for the flag, the ini key and the env var.

Three front ends read the same table (:data:`OPTIONS`; ``Option.fronts`` says which offer an
option): the pytest plugin (flags, ini keys, env vars), ``k8s-sa up`` and ``k8s-sa upstream-e2e``
(argparse flags and env vars; a command has no ini file). One precedence for all, command line >
environment variable > ini file > default (:func:`lookup`); one boolean parser (:func:`parse_bool`);
one :class:`~.settings.Settings` builder (:func:`build_settings`).

pytest-kind(-ng) registers ``--cluster-name``, ``--keep-cluster`` and (in -ng) ``--kubeconfig``.
When it is installed those flags are reused, never registered twice; their ini keys and env vars
are this plugin's own. Under the kind provider ``--kubeconfig`` keeps pytest-kind's meaning (where
kind writes the cluster's kubeconfig); otherwise it names an existing cluster to attach to.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..base.errors import K8sSAError
from ..providers.registry import PROVIDERS as _BUILDERS
from ..providers.registry import UP_PROVIDERS, SettingsError, resolve_provider
from ..providers.settings import Settings

PROVIDERS = tuple(_BUILDERS)
PYTEST = "pytest"
UP = "up"
E2E = "upstream-e2e"
CLUSTER_FRONTS = frozenset({PYTEST, UP, E2E})
""":data:`PYTEST`: the plugin; :data:`UP`: ``k8s-sa up``; :data:`E2E`: ``k8s-sa upstream-e2e``."""
KIND_PLUGINS = (("pytest-kind-ng", "pytest-kind-ng"), ("pytest-kind", "pytest-kind"))
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    ini: str
    env: str
    help: str
    default: str | bool | None = None
    is_bool: bool = False
    choices: tuple[str, ...] | None = None
    kind_owned: bool = False
    """Registered by pytest-kind when it is installed."""
    fronts: frozenset[str] = frozenset({PYTEST})
    """Which front ends offer it (elsewhere its value is None: the default of :class:`Settings`)."""
    front_choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Narrower choices for some front ends, e.g. ``k8s-sa up`` starts clusters, so no ``kubeconfig``."""

    def choices_for(self, front: str) -> tuple[str, ...] | None:
        return dict(self.front_choices).get(front, self.choices)


class OptionError(K8sSAError):
    """An option's value is invalid; the message names the option and where the value came from."""


OPTIONS: tuple[Option, ...] = (
    Option(
        "--k8s-provider",
        "k8s_provider",
        "k8s_sa_provider",
        "K8S_SA_PROVIDER",
        "Where the cluster comes from: local (embedded control plane, default), kind, kubeconfig, "
        "local-node (control plane plus a real kubelet/containerd node; Linux, root).",
        choices=PROVIDERS,
        fronts=CLUSTER_FRONTS,
        front_choices=((UP, UP_PROVIDERS),),
    ),
    Option(
        "--kind-cluster",
        "kind_cluster",
        "k8s_sa_kind_cluster",
        "K8S_SA_KIND_CLUSTER",
        "Run on a kind cluster through pytest-kind (name: --cluster-name); same as --k8s-provider kind.",
        is_bool=True,
        default=False,
    ),
    Option(
        "--kubeconfig",
        "kubeconfig",
        "k8s_sa_kubeconfig",
        "K8S_SA_KUBECONFIG",
        "Attach to the existing cluster of this kubeconfig (with --kind-cluster: where kind writes it).",
        kind_owned=True,
        fronts=frozenset({PYTEST, E2E}),
    ),
    Option(
        "--k8s-version",
        "k8s_version",
        "k8s_sa_version",
        "K8S_SA_VERSION",
        "Kubernetes version of the local control plane (built from Go modules if not cached); "
        "with --kind-cluster, selects the kindest/node image.",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--k8s-bin-dir",
        "k8s_bin_dir",
        "k8s_sa_bin_dir",
        "K8S_SA_BIN_DIR",
        "Folder with etcd, kube-apiserver and kube-controller-manager to use instead of the cache.",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--keep-cluster",
        "keep_cluster",
        "k8s_sa_keep_cluster",
        "K8S_SA_KEEP_CLUSTER",
        "Keep the cluster after the run (kind: not deleted; local: its folder with logs, PKI and "
        "etcd data is kept, its processes still stop).",
        is_bool=True,
        default=False,
        kind_owned=True,
    ),
    Option(
        "--k8s-start-early",
        "k8s_start_early",
        "k8s_sa_start_early",
        "K8S_SA_START_EARLY",
        "Start the local cluster while pytest still imports and collects, about a second sooner on 2 "
        "cores; started even if no selected test needs it (then stopped). For runs that need it: "
        "`k8s-sa conformance` and the nox conformance sessions turn it on. Ignored under xdist, with "
        "--keep-cluster, for other providers and before the first build of the binaries.",
        is_bool=True,
        default=False,
    ),
    Option(
        "--keep-namespaces-on-failure",
        "keep_namespaces_on_failure",
        "k8s_sa_keep_namespaces_on_failure",
        "K8S_SA_KEEP_NAMESPACES_ON_FAILURE",
        "Do not delete the namespace of a failed test, to inspect it afterwards.",
        is_bool=True,
        default=False,
    ),
    Option(
        "--kind-config",
        "kind_config",
        "k8s_sa_kind_config",
        "K8S_SA_KIND_CONFIG",
        "kind: create the cluster with this kind configuration file instead of the project's.",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--kind-pod-subnet",
        "kind_pod_subnet",
        "k8s_sa_kind_pod_subnet",
        "K8S_SA_KIND_POD_SUBNET",
        "kind: the pod subnet of the project's cluster configuration (default 100.98.0.0/16).",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--kind-service-subnet",
        "kind_service_subnet",
        "k8s_sa_kind_service_subnet",
        "K8S_SA_KIND_SERVICE_SUBNET",
        "kind: the Service subnet of the project's cluster configuration (default 100.99.0.0/16).",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--conformance-report",
        "conformance_report",
        "k8s_sa_conformance_report",
        "K8S_SA_CONFORMANCE_REPORT",
        "Write the conformance report (JSON: checks with id, outcome, fidelity, evidence) to this path.",
    ),
    Option(
        "--conformance-profile",
        "conformance_profile",
        "k8s_sa_conformance_profile",
        "K8S_SA_CONFORMANCE_PROFILE",
        "Conformance profile: fast (default) or full (adds real-time expiry and rotation, about 11 min).",
        default="fast",
        choices=("fast", "full"),
    ),
    Option(
        "--k8s-apt-mirror",
        "k8s_apt_mirror",
        "k8s_sa_apt_mirror",
        "K8S_SA_APT_MIRROR",
        "local-node: where the python image's Debian packages come from: a mirror URI, a one-line "
        "'deb ...' entry or an apt sources file (default: this machine's own apt sources).",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--k8s-node-wait",
        "k8s_node_wait",
        "k8s_sa_node_wait",
        "K8S_SA_NODE_WAIT",
        "local-node: seconds to wait for this machine's node lock while another run holds it (one "
        "node per machine); default 5, e.g. 1800 where CI jobs share a machine.",
        fronts=CLUSTER_FRONTS,
    ),
    Option(
        "--sut",
        "sut",
        "k8s_sa_sut",
        "K8S_SA_SUT",
        "System under test: a YAML file naming the callee (and optional caller) the conformance suite "
        "judges; without it, this project's reference workloads.",
    ),
    Option(
        "--conformance-summary",
        "conformance_summary",
        "k8s_sa_conformance_summary",
        "K8S_SA_CONFORMANCE_SUMMARY",
        "Write a Markdown summary of the verdict (result, failed checks with what to fix, a table of all) "
        "to this path; it is also appended to $GITHUB_STEP_SUMMARY when that is set.",
    ),
    Option(
        "--conformance-html",
        "conformance_html",
        "k8s_sa_conformance_html",
        "K8S_SA_CONFORMANCE_HTML",
        "Write a self-contained HTML report (filters, each check's requirement and evidence, a timeline) "
        "to this path; it needs no network to read.",
    ),
    Option(
        "--conformance-artifacts",
        "conformance_artifacts",
        "k8s_sa_conformance_artifacts",
        "K8S_SA_CONFORMANCE_ARTIFACTS",
        "Where to keep what explains each failed check (log tails, pods and events in pod mode, the "
        "apiserver's TokenReviews on local, local-node and kind, tokens reduced to jti and claims); default: "
        "<report>-artifacts beside --conformance-report. The "
        "report's outputs and this folder are also packed into <report>.tar.gz.",
    ),
    Option(
        "--conformance-checks",
        "conformance_checks",
        "k8s_sa_conformance_checks",
        "K8S_SA_CONFORMANCE_CHECKS",
        "Run only these checks: comma-separated ids and areas (e.g. SEC-003,REV,ALLOW); the report's "
        "result then speaks for the selection only.",
    ),
    Option(
        "--conformance-level",
        "conformance_level",
        "k8s_sa_conformance_level",
        "K8S_SA_CONFORMANCE_LEVEL",
        "Run only the checks of this level: must or should.",
        choices=("must", "should"),
    ),
    Option(
        "--conformance-strict",
        "conformance_strict",
        "k8s_sa_conformance_strict",
        "K8S_SA_CONFORMANCE_STRICT",
        "Failed `should`-level checks fail the run too (by default they are reported only).",
        is_bool=True,
        default=False,
    ),
    Option(
        "--focus",
        "e2e_focus",
        "",
        "K8S_SA_E2E_FOCUS",
        "ginkgo focus regex (default: the service-account specs of SIG Auth).",
        fronts=frozenset({E2E}),
    ),
    Option(
        "--skip",
        "e2e_skip",
        "",
        "K8S_SA_E2E_SKIP",
        "ginkgo skip regex (default: [Slow], [Serial], [Disruptive], Feature:OffByDefault).",
        fronts=frozenset({E2E}),
    ),
    Option(
        "--slow",
        "e2e_slow",
        "",
        "K8S_SA_E2E_SLOW",
        "also run [Slow] specs (token rotation alone takes ~9 min).",
        is_bool=True,
        default=False,
        fronts=frozenset({E2E}),
    ),
    Option(
        "--report-dir",
        "e2e_report_dir",
        "",
        "K8S_SA_E2E_REPORT_DIR",
        "where results and logs go (default reports/upstream-e2e-<provider>).",
        fronts=frozenset({E2E}),
    ),
    Option(
        "--timeout-minutes",
        "e2e_timeout_minutes",
        "",
        "K8S_SA_E2E_TIMEOUT_MINUTES",
        "ginkgo's whole-run timeout in minutes (default 60, 120 with --slow).",
        fronts=frozenset({E2E}),
    ),
)

BY_DEST = {o.dest: o for o in OPTIONS}


def kind_plugin_active(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-kind(-ng) is installed and will register its own options."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    for dist, entry_point in KIND_PLUGINS:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return not pluginmanager.is_blocked(entry_point)
    return False


def _help(option: Option, front: str = PYTEST) -> str:
    if front == PYTEST:
        return f"{option.help} [env {option.env}; ini {option.ini}]"
    return f"{option.help} [env {option.env}]"


def register(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("k8s-sa", "Kubernetes service-account tokens (pytest-k8s-sa)")
    kind_active = kind_plugin_active(pluginmanager)
    for option in OPTIONS:
        if PYTEST not in option.fronts:
            continue
        parser.addini(option.ini, _help(option), type="string", default=None)
        if option.kind_owned and kind_active:
            continue
        kwargs: dict[str, Any] = {"dest": option.dest, "help": _help(option)}
        if option.is_bool:
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(action="store", default=None, choices=option.choices)
        # Registered already by another plugin (pytest-kind loaded another way): reuse it.
        with contextlib.suppress(ValueError):
            group.addoption(option.flag, **kwargs)


def parse_bool(raw: str, *, what: str) -> bool:
    """The one boolean parser: 1/true/yes/on and 0/false/no/off (any case; empty is false)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OptionError(f"{what}: {raw!r} is not a boolean (use true or false).")


def lookup(option: Option, flag: Any, ini: Any = None, *, front: str = PYTEST) -> Any:
    """The value of ``option`` by precedence: command line (``flag``) > env var > ini value > default.

    ``flag`` is None (or False for a boolean flag) when not given; env and ini values are text,
    checked here (a boolean, one of the choices) with an :class:`OptionError` naming the source.
    """
    if flag not in (None, False):
        return flag
    choices = option.choices_for(front)
    for source, raw in ((f"${option.env}", os.environ.get(option.env)), (f"ini {option.ini}", ini)):
        if raw in (None, ""):
            continue
        if option.is_bool:
            return parse_bool(str(raw), what=f"{source} for {option.flag}")
        if choices and raw not in choices:
            raise OptionError(
                f"{source} = {raw!r} is not a valid {option.flag}; choose one of {', '.join(choices)}."
            )
        return raw
    return option.default


def get(config: pytest.Config, dest: str) -> Any:
    """The plugin's value of an option (:func:`lookup` with pytest's flag and ini key)."""
    option = BY_DEST[dest]
    try:
        return lookup(option, config.getoption(dest, default=None), config.getini(option.ini))
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def seconds(raw: Any, option: Option, default: float) -> float:
    """A non-negative number of seconds, or an :class:`OptionError` naming the option."""
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise OptionError(f"{option.flag}: {raw!r} is not a number of seconds (e.g. 600).")
    return value


def build_settings(value: Callable[[str], Any], *, check_version: bool = True, **fixed: Any) -> Settings:
    """The one :class:`Settings` builder: ``value(dest)`` is a front end's resolved option (None where
    it does not offer one), ``fixed`` what the front end sets itself (a work folder, a cluster name).

    Contradictions are an :class:`OptionError` saying which options to change. ``check_version=False``:
    ``--k8s-version`` also names something besides the cluster (upstream-e2e's binary), so it may go
    with an existing cluster.
    """
    kubeconfig = value("kubeconfig")
    version = value("k8s_version")
    bin_dir = value("k8s_bin_dir")
    try:
        provider = resolve_provider(
            value("k8s_provider"),
            kind_cluster=bool(value("kind_cluster")),
            kubeconfig=kubeconfig,
            k8s_version=version if check_version else None,
            bin_dir=bin_dir,
        )
    except SettingsError as exc:
        raise OptionError(str(exc)) from None
    node_wait = BY_DEST["k8s_node_wait"]
    values: dict[str, Any] = {
        "provider": provider,
        "kubeconfig": kubeconfig,
        "k8s_version": version,
        "bin_dir": bin_dir,
        "keep_cluster": bool(value("keep_cluster")),
        "keep_namespaces_on_failure": bool(value("keep_namespaces_on_failure")),
        "kind_config": value("kind_config"),
        "kind_pod_subnet": value("kind_pod_subnet"),
        "kind_service_subnet": value("kind_service_subnet"),
        "apt_mirror": value("k8s_apt_mirror"),
        "node_wait_seconds": seconds(value(node_wait.dest), node_wait, Settings.node_wait_seconds),
    }
    return Settings(**{**values, **fixed})


# --- argparse front ends (``k8s-sa up``, ``k8s-sa upstream-e2e``) --------------------------------


def add_arguments(parser: argparse.ArgumentParser, front: str) -> None:
    """Add the options ``front`` offers as flags; their env vars apply too (see :func:`from_args`)."""
    for option in OPTIONS:
        if front not in option.fronts:
            continue
        if option.is_bool:
            parser.add_argument(
                option.flag, dest=option.dest, action="store_true", default=None, help=_help(option, front)
            )
        else:
            parser.add_argument(
                option.flag,
                dest=option.dest,
                default=None,
                choices=option.choices_for(front),
                help=_help(option, front),
            )


def from_args(args: argparse.Namespace, front: str) -> Callable[[str], Any]:
    """``value(dest)`` for an argparse front end: flag > env var > default; None where not offered."""

    def value(dest: str) -> Any:
        option = BY_DEST[dest]
        if front not in option.fronts:
            return None
        return lookup(option, getattr(args, dest, None), front=front)

    return value


def resolve(config: pytest.Config) -> Settings:
    """Resolve and validate; contradictions are a :class:`pytest.UsageError` saying what to do."""
    try:
        return build_settings(
            lambda dest: get(config, dest),
            kind_cluster_name=str(config.getoption("cluster_name", default=None) or "pytest-k8s-sa"),
            # pytest-kind(-ng)'s own options, when it is installed.
            kind_image=config.getoption("kind_image", default=None),
            kind_bin=config.getoption("kind_bin", default=None),
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def sut_path(config: pytest.Config) -> Path | None:
    """The SUT file: ``--sut``/``$K8S_SA_SUT`` relative to the invocation folder, the ini key relative
    to the ini file's folder (so a project can commit ``k8s_sa_sut = ci/sut.yaml``)."""
    option = BY_DEST["sut"]
    cli = config.getoption("sut", default=None)
    if cli:
        return Path(config.invocation_params.dir, cli).expanduser()
    env = os.environ.get(option.env)
    if env:
        return Path(config.invocation_params.dir, env).expanduser()
    ini = config.getini(option.ini)
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return Path(base, str(ini)).expanduser()
    return None
