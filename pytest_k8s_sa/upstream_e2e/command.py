"""``k8s-sa upstream-e2e``: build, start or attach to a cluster, load images, run, report.

Every option is a flag with an environment variable, from the one option table
(:data:`pytest_k8s_sa.plugin.options.OPTIONS`; the command has no ini file): the pytest plugin's
``K8S_SA_PROVIDER``, ``K8S_SA_KUBECONFIG``, ``K8S_SA_VERSION``, ``K8S_SA_BIN_DIR`` ... mean the same
here, and a flag wins over its variable. Exit status: 0 when every selected spec passed (or was
skipped / not applicable) and at least one ran, 1 when a spec failed, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from ..components.binaries import DEFAULT_K8S_VERSION, stderr_progress
from ..plugin import options
from ..providers.base import ClusterInfo, NodeControl, Provider
from ..providers.registry import build_provider
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


def add_parser(sub: Any) -> None:
    """Register the ``upstream-e2e`` subcommand on the ``k8s-sa`` parser (its options: the table's)."""
    p = sub.add_parser(
        "upstream-e2e",
        help="run upstream Kubernetes' own service-account e2e specs (SIG Auth) on a cluster",
        description=(
            "Build upstream's SIG Auth e2e binary (cached), start or attach to a cluster, build and load "
            "the test images where there is no registry, run the service-account specs and write "
            "JSON + JUnit results and a summary table."
        ),
    )
    options.add_arguments(p, options.E2E)
    p.add_argument(
        "--build-only",
        action="store_true",
        help="only build (or find) the e2e binary, kubectl and agnhost, then exit",
    )


@dataclass(frozen=True)
class E2EOptions:
    """The command's resolved options (flag > env var > default), checked."""

    settings: Settings
    focus: str
    skip: str | None
    slow: bool
    report_dir: Path | None
    timeout_minutes: int
    build_only: bool

    @property
    def version(self) -> str:
        return self.settings.k8s_version or DEFAULT_K8S_VERSION


def resolve(args: argparse.Namespace, workdir: Path | None = None) -> E2EOptions:
    """The options from ``args`` and the ``K8S_SA_*`` variables; an :class:`~..options.OptionError`
    (exit status 2) names a bad one.

    ``--k8s-version`` is left out of the provider check: here it also picks the e2e binary's
    version, which is meaningful for an existing cluster too.
    """
    value = options.from_args(args, options.E2E)
    settings = options.build_settings(
        value,
        check_version=False,
        kind_cluster_name="k8s-sa-upstream-e2e",
        work_dir=str(workdir) if workdir else None,
        owner_pid=os.getpid(),
    )
    raw_minutes = value("e2e_timeout_minutes")
    try:
        minutes = int(raw_minutes or 0)
    except ValueError:
        minutes = -1
    if minutes < 0:
        raise options.OptionError(f"--timeout-minutes: {raw_minutes!r} is not a whole number of minutes")
    report_dir = value("e2e_report_dir")
    return E2EOptions(
        settings=settings,
        focus=value("e2e_focus") or DEFAULT_FOCUS,
        skip=value("e2e_skip"),
        slow=bool(value("e2e_slow")),
        report_dir=Path(report_dir) if report_dir else None,
        timeout_minutes=minutes,
        build_only=bool(args.build_only),
    )


def make_provider(opts: E2EOptions, workdir: Path) -> Provider:
    """The cluster of ``opts``, built by the provider registry like the plugin's, owned by this process."""
    settings = dataclasses.replace(opts.settings, k8s_version=opts.version, work_dir=str(workdir))
    return build_provider(settings.provider, settings)


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
    opts = resolve(args)
    name = opts.settings.provider
    focus = validate_regex(opts.focus, "--focus")
    skip = validate_regex(opts.skip if opts.skip is not None else default_skip(slow=opts.slow), "--skip")
    started = time.monotonic()
    binaries = find_e2e_binaries(opts.version, progress=progress)
    build_seconds = round(time.monotonic() - started, 1)
    if opts.build_only:
        print(binaries.e2e_test)
        return 0
    report_dir: Path = (opts.report_dir or Path("reports") / f"upstream-e2e-{name}").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    timeout = opts.timeout_minutes or (120 if opts.slow else 60)
    with tempfile.TemporaryDirectory(prefix="k8s-sa-e2e-") as tmp:
        provider = make_provider(opts, Path(tmp))
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
                run_options = RunOptions(
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
                result = run_specs(binaries, info, run_options, progress)
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
