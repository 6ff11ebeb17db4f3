"""``k8s-sa upstream-e2e``: build, start or attach to a cluster, load images, run, report.

Every option is a flag with an environment variable as its default (the command has no ini file;
the pytest plugin's ``K8S_SA_PROVIDER``, ``K8S_SA_KUBECONFIG``, ``K8S_SA_VERSION`` and
``K8S_SA_BIN_DIR`` mean the same here). Exit status: 0 when every selected spec passed (or was
skipped / not applicable) and at least one ran, 1 when a spec failed, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes

from ..components.binaries import DEFAULT_K8S_VERSION, stderr_progress
from ..providers.base import ClusterInfo, NodeControl, Provider
from ..providers.registry import PROVIDERS, build_provider, resolve_provider
from ..providers.settings import Settings
from . import images
from .build import E2EBinaries, find_e2e_binaries
from .results import E2EResult, counts_line, summary_table, write_json, write_junit
from .run import (
    DEFAULT_FOCUS,
    RunOptions,
    default_skip,
    e2e_namespaces,
    remove_leftover_namespaces,
    run_specs,
    validate_regex,
)

progress = stderr_progress


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def add_parser(sub: Any) -> None:
    """Register the ``upstream-e2e`` subcommand on the ``k8s-sa`` parser."""
    p = sub.add_parser(
        "upstream-e2e",
        help="run upstream Kubernetes' own service-account e2e specs (SIG Auth) on a cluster",
        description=(
            "Build upstream's SIG Auth e2e binary (cached), start or attach to a cluster, build and load "
            "the test images where there is no registry, run the service-account specs and write "
            "JSON + JUnit results and a summary table."
        ),
    )
    env = os.environ.get
    p.add_argument(
        "--k8s-provider",
        choices=tuple(PROVIDERS),
        default=env("K8S_SA_PROVIDER"),
        help="local (default; no node: pod specs are not applicable), local-node, kind, kubeconfig "
        "[$K8S_SA_PROVIDER]",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=env("K8S_SA_KUBECONFIG"),
        help="run on this existing cluster (images pulled by the cluster from upstream's registry) "
        "[$K8S_SA_KUBECONFIG]",
    )
    p.add_argument(
        "--k8s-version",
        default=env("K8S_SA_VERSION"),
        help=f"Kubernetes version of a local cluster and of the e2e binary (default {DEFAULT_K8S_VERSION}) "
        "[$K8S_SA_VERSION]",
    )
    p.add_argument(
        "--k8s-bin-dir", default=env("K8S_SA_BIN_DIR"), help="control-plane binaries [$K8S_SA_BIN_DIR]"
    )
    p.add_argument(
        "--focus",
        default=env("K8S_SA_E2E_FOCUS", DEFAULT_FOCUS),
        help=f"ginkgo focus regex (default {DEFAULT_FOCUS!r}) [$K8S_SA_E2E_FOCUS]",
    )
    p.add_argument(
        "--skip",
        default=env("K8S_SA_E2E_SKIP"),
        help="ginkgo skip regex (default: [Slow], [Serial], [Disruptive], Feature:OffByDefault) "
        "[$K8S_SA_E2E_SKIP]",
    )
    p.add_argument(
        "--slow",
        action="store_true",
        default=_env_flag("K8S_SA_E2E_SLOW"),
        help="also run [Slow] specs (token rotation alone takes ~9 min) [$K8S_SA_E2E_SLOW]",
    )
    p.add_argument(
        "--report-dir",
        type=Path,
        default=env("K8S_SA_E2E_REPORT_DIR"),
        help="where results and logs go (default reports/upstream-e2e-<provider>) [$K8S_SA_E2E_REPORT_DIR]",
    )
    p.add_argument(
        "--build-only",
        action="store_true",
        help="only build (or find) the e2e binary, kubectl and agnhost, then exit",
    )
    p.add_argument(
        "--timeout-minutes",
        type=int,
        default=int(env("K8S_SA_E2E_TIMEOUT_MINUTES", "0") or 0),
        help="ginkgo's whole-run timeout (default 60, 120 with --slow) [$K8S_SA_E2E_TIMEOUT_MINUTES]",
    )


def _provider_name(args: argparse.Namespace) -> str:
    """The provider the options select (the plugin's rules, :func:`resolve_provider`).

    ``--k8s-version`` is left out of the check: here it also picks the e2e binary's version, which
    is meaningful for an existing cluster too.
    """
    return resolve_provider(
        args.k8s_provider,
        kubeconfig=str(args.kubeconfig) if args.kubeconfig else None,
        bin_dir=args.k8s_bin_dir,
    )


def make_provider(name: str, args: argparse.Namespace, workdir: Path) -> Provider:
    """The cluster for ``name``, built by the provider registry like the plugin's, owned by this process."""
    version = args.k8s_version or DEFAULT_K8S_VERSION
    settings = Settings(
        provider=name,
        kubeconfig=str(args.kubeconfig) if args.kubeconfig else None,
        k8s_version=version,
        bin_dir=args.k8s_bin_dir,
        kind_cluster_name="k8s-sa-upstream-e2e",
        work_dir=str(workdir),
        owner_pid=os.getpid(),
    )
    return build_provider(name, settings)


def load_images(node_control: NodeControl, binaries: E2EBinaries, report_dir: Path) -> Path:
    """Build agnhost and busybox, load them into the node; returns the ``$KUBE_TEST_REPO_LIST`` file."""
    repo_list = images.write_repo_list(report_dir / "repo-list.yaml")
    names = images.list_images(binaries.e2e_test, repo_list)
    archives = [
        images.agnhost_image(binaries.agnhost, names["agnhost"], progress=progress),
        images.busybox_image(names["busybox"], progress=progress),
    ]
    loaded: list[str] = []
    for archive in archives:
        loaded += node_control.load_image_archive(archive)
    progress(f"loaded {', '.join(sorted(loaded))} into the node")
    return repo_list


def run(args: argparse.Namespace) -> int:
    """The whole command; returns the exit status (errors raise :class:`K8sSAError`)."""
    name = _provider_name(args)
    focus = validate_regex(args.focus, "--focus")
    skip = validate_regex(args.skip if args.skip is not None else default_skip(slow=args.slow), "--skip")
    version = args.k8s_version or DEFAULT_K8S_VERSION
    started = time.monotonic()
    binaries = find_e2e_binaries(version, progress=progress)
    build_seconds = round(time.monotonic() - started, 1)
    if args.build_only:
        print(binaries.e2e_test)
        return 0
    report_dir: Path = (args.report_dir or Path("reports") / f"upstream-e2e-{name}").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout_minutes or (120 if args.slow else 60)
    with tempfile.TemporaryDirectory(prefix="k8s-sa-e2e-") as tmp:
        provider = make_provider(name, args, Path(tmp))
        cluster_started = time.monotonic()
        progress(f"starting the {name} cluster ...")
        info: ClusterInfo = provider.create()
        try:
            cluster_seconds = round(time.monotonic() - cluster_started, 1)
            repo_list = None
            if info.node_control is not None:  # a node without a registry: build and load the images
                repo_list = load_images(info.node_control, binaries, report_dir)
            api_client = info.api_client()
            try:
                before = e2e_namespaces(api_client)
                options = RunOptions(
                    focus=focus,
                    skip=skip,
                    report_dir=report_dir,
                    repo_list=repo_list,
                    runs_pods=info.capabilities.runs_pods,
                    timeout_minutes=timeout,
                )
                server_version = str(kubernetes.client.VersionApi(api_client).get_code().git_version)
                if not server_version.lstrip("v").startswith(".".join(binaries.version.split(".")[:2]) + "."):
                    progress(
                        f"note: the cluster runs {server_version}, the e2e specs are v{binaries.version}'s "
                        "(pass --k8s-version to match if a pinned e2e module exists for it)"
                    )
                result = run_specs(binaries, info, options, progress)
                result.server_version = server_version
                leftovers = remove_leftover_namespaces(api_client, before, progress)
            finally:
                api_client.close()
        finally:
            provider.destroy()
    result.extra = {
        "e2e_binary": str(binaries.e2e_test),
        "e2e_version": binaries.version,
        "build_or_lookup_seconds": build_seconds,
        "cluster_start_seconds": cluster_seconds,
        "images": (
            "built locally, loaded into the node"
            if repo_list
            else (
                "upstream names (the cluster pulls them)" if info.capabilities.runs_pods else "none (no node)"
            )
        ),
        "leftover_namespaces_deleted": leftovers,
        "log": str(report_dir / "e2e.log"),
    }
    _report(result, report_dir)
    return 0 if result.ok else 1


def _report(result: E2EResult, report_dir: Path) -> None:
    json_path = write_json(result, report_dir / "upstream-e2e.json")
    junit_path = write_junit(result, report_dir / "upstream-e2e-junit.xml")
    print(summary_table(result.specs))
    where = f"on {result.provider} ({result.server_version})"
    print(f"\n{counts_line(result.specs)} in {result.seconds:.0f}s {where}")
    if result.not_applicable_reason and any(s.outcome == "not-applicable" for s in result.specs):
        print(f"not-applicable: {result.not_applicable_reason}")
    if not result.specs:
        print("no spec matched --focus/--skip: nothing was checked", file=sys.stderr)
    print(f"results: {json_path}, {junit_path}; e2e log: {report_dir / 'e2e.log'}")
