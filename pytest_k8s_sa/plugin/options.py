"""The plugin's options: one table, one help string per option for the flag, the ini key and the env var.

Precedence: command line > environment variable > ini file > default.

pytest-kind(-ng) registers ``--cluster-name``, ``--keep-cluster`` and (in -ng) ``--kubeconfig``.
When it is installed those flags are reused, never registered twice; their ini keys and env vars
are this plugin's own. Under the kind provider ``--kubeconfig`` keeps pytest-kind's meaning (where
kind writes the cluster's kubeconfig); otherwise it names an existing cluster to attach to.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..providers.registry import PROVIDERS as _BUILDERS
from ..providers.registry import SettingsError, resolve_provider
from ..providers.settings import Settings

PROVIDERS = tuple(_BUILDERS)
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


OPTIONS: tuple[Option, ...] = (
    Option(
        "--k8s-provider",
        "k8s_provider",
        "k8s_sa_provider",
        "K8S_SA_PROVIDER",
        "Where the cluster comes from: local (embedded control plane, default), kind, kubeconfig, "
        "local-node (control plane plus a real kubelet/containerd node; Linux, root).",
        choices=PROVIDERS,
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
    ),
    Option(
        "--k8s-version",
        "k8s_version",
        "k8s_sa_version",
        "K8S_SA_VERSION",
        "Kubernetes version of the local control plane (built from Go modules if not cached); "
        "with --kind-cluster, selects the kindest/node image.",
    ),
    Option(
        "--k8s-bin-dir",
        "k8s_bin_dir",
        "k8s_sa_bin_dir",
        "K8S_SA_BIN_DIR",
        "Folder with etcd, kube-apiserver and kube-controller-manager to use instead of the cache.",
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
    ),
    Option(
        "--kind-pod-subnet",
        "kind_pod_subnet",
        "k8s_sa_kind_pod_subnet",
        "K8S_SA_KIND_POD_SUBNET",
        "kind: the pod subnet of the project's cluster configuration (default 100.98.0.0/16).",
    ),
    Option(
        "--kind-service-subnet",
        "kind_service_subnet",
        "k8s_sa_kind_service_subnet",
        "K8S_SA_KIND_SERVICE_SUBNET",
        "kind: the Service subnet of the project's cluster configuration (default 100.99.0.0/16).",
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
    ),
    Option(
        "--k8s-node-wait",
        "k8s_node_wait",
        "k8s_sa_node_wait",
        "K8S_SA_NODE_WAIT",
        "local-node: seconds to wait for this machine's node lock while another run holds it (one "
        "node per machine); default 5, e.g. 1800 where CI jobs share a machine.",
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
        "--conformance-strict",
        "conformance_strict",
        "k8s_sa_conformance_strict",
        "K8S_SA_CONFORMANCE_STRICT",
        "Failed `should`-level checks fail the run too (by default they are reported only).",
        is_bool=True,
        default=False,
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


def _help(option: Option) -> str:
    return f"{option.help} [env {option.env}; ini {option.ini}]"


def register(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("k8s-sa", "Kubernetes service-account tokens (pytest-k8s-sa)")
    kind_active = kind_plugin_active(pluginmanager)
    for option in OPTIONS:
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


def _parse_bool(option: Option, raw: str, source: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise pytest.UsageError(f"{source} for {option.flag}: {raw!r} is not a boolean (use true or false).")


def get(config: pytest.Config, dest: str) -> Any:
    """The value of an option by precedence: command line > env var > ini key > default."""
    option = BY_DEST[dest]
    cli = config.getoption(dest, default=None)
    if cli not in (None, False):
        return cli
    for source, raw in (
        (f"${option.env}", os.environ.get(option.env)),
        (f"ini {option.ini}", config.getini(option.ini)),
    ):
        if raw in (None, ""):
            continue
        if option.is_bool:
            return _parse_bool(option, str(raw), source)
        if option.choices and raw not in option.choices:
            raise pytest.UsageError(
                f"{source} = {raw!r} is not a valid {option.flag}; choose one of {', '.join(option.choices)}."
            )
        return raw
    return option.default


def resolve(config: pytest.Config) -> Settings:
    """Resolve and validate; contradictions are a :class:`pytest.UsageError` saying what to do."""
    kubeconfig = get(config, "kubeconfig")
    version = get(config, "k8s_version")
    bin_dir = get(config, "k8s_bin_dir")
    try:
        provider = resolve_provider(
            get(config, "k8s_provider"),
            kind_cluster=bool(get(config, "kind_cluster")),
            kubeconfig=kubeconfig,
            k8s_version=version,
            bin_dir=bin_dir,
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Settings(
        provider=provider,
        kubeconfig=kubeconfig,
        k8s_version=version,
        bin_dir=bin_dir,
        keep_cluster=bool(get(config, "keep_cluster")),
        keep_namespaces_on_failure=bool(get(config, "keep_namespaces_on_failure")),
        kind_cluster_name=str(config.getoption("cluster_name", default=None) or "pytest-k8s-sa"),
        # pytest-kind(-ng)'s own options, when it is installed.
        kind_image=config.getoption("kind_image", default=None),
        kind_bin=config.getoption("kind_bin", default=None),
        kind_config=get(config, "kind_config"),
        kind_pod_subnet=get(config, "kind_pod_subnet"),
        kind_service_subnet=get(config, "kind_service_subnet"),
        apt_mirror=get(config, "k8s_apt_mirror"),
        node_wait_seconds=_seconds(config, "k8s_node_wait", Settings.node_wait_seconds),
    )


def _seconds(config: pytest.Config, dest: str, default: float) -> float:
    """A non-negative number of seconds, or a usage error naming the option."""
    raw = get(config, dest)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise pytest.UsageError(f"{BY_DEST[dest].flag}: {raw!r} is not a number of seconds (e.g. 600).")
    return value


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
