"""The ``k8s-sa`` command: ``build`` the control-plane binaries, ``up`` a cluster, run the
``conformance`` suite.

``k8s-sa up --kubeconfig PATH [--k8s-provider local|local-node|kind]`` is how users debug, and how
other tools reach a cluster just like the one the tests use: it prints one line
``ready <kubeconfig>`` and runs until SIGINT/SIGTERM, then removes what it started.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import kubernetes

from .base.errors import K8sSAError
from .components.binaries import DEFAULT_K8S_VERSION, build_binaries
from .plugin import options
from .providers.registry import build_provider
from .providers.settings import Settings

LIVENESS_INTERVAL_SECONDS = 2.0
LIVENESS_FAILURES = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k8s-sa", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="build etcd, kube-apiserver and kube-controller-manager from Go modules"
    )
    build.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, help=f"default {DEFAULT_K8S_VERSION}")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache has the binaries")
    up = sub.add_parser(
        "up",
        help="run a cluster in the foreground until SIGINT/SIGTERM",
        description="Start a cluster like the tests' and run until SIGINT/SIGTERM. The cluster options "
        "are the pytest plugin's (the same K8S_SA_* environment variables; a flag wins over its variable).",
    )
    up.add_argument("--kubeconfig", required=True, type=Path, help="where to write the admin kubeconfig")
    options.add_arguments(up, options.UP)
    up.add_argument(
        "--workdir", type=Path, default=None, help="local: keep PKI, logs and etcd data here (kept)"
    )
    up.add_argument("--kind-image", default=None, help="kind: the kindest/node image")
    up.add_argument("--kind-bin", default=None, help="kind: the kind binary (else on PATH)")
    up.add_argument("--cluster-name", default="pytest-k8s-sa", help="kind: the cluster's name")
    _kind_parsers(sub)
    from .upstream_e2e.command import add_parser as add_upstream_e2e

    add_upstream_e2e(sub)
    from .catalogue.command import add_parser as add_checks

    add_checks(sub)
    sub.add_parser(
        "conformance",
        help="run the conformance suite from any folder: k8s-sa conformance [--sut FILE] [pytest options]",
        add_help=False,
    )
    return parser


def _settings(args: argparse.Namespace, work_dir: Path) -> Settings:
    """``up``'s settings: the table's options (flag > env var > default) plus its own flags; the
    version defaults to the project's (so kind's node image is chosen by it, too)."""
    settings = options.build_settings(
        options.from_args(args, options.UP),
        keep_cluster=args.workdir is not None,
        kind_cluster_name=args.cluster_name,
        kind_image=args.kind_image,
        kind_bin=args.kind_bin,
        work_dir=str(work_dir),
    )
    return dataclasses.replace(settings, k8s_version=settings.k8s_version or DEFAULT_K8S_VERSION)


def _alive(api_client: kubernetes.client.ApiClient) -> bool:
    try:
        kubernetes.client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception:
        return False
    return True


def _kind_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``docker up|down``, ``kind-image`` and ``kind-bin``: kind on machines without a registry."""
    docker = sub.add_parser(
        "docker", help="start (as root, with Debian's dockerd) or stop the project's Docker engine"
    )
    docker.add_argument("action", choices=("up", "down", "status"))
    image = sub.add_parser(
        "kind-image", help="build the kind node image kindest/node:v<version> from local components"
    )
    image.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, help=f"default {DEFAULT_K8S_VERSION}")
    image.add_argument("--tag", default=None, help="image name (default kindest/node:v<version>)")
    image.add_argument(
        "--force", action="store_true", help="rebuild even if an image with the same inputs exists"
    )
    sub.add_parser("kind-bin", help="build the kind binary from its Go module and print its path")


def _kind_command(args: argparse.Namespace) -> int:
    if args.command == "docker":
        from .kind import docker

        if args.action == "up":
            started = docker.up()
            print("started" if started else "a Docker engine already answers; nothing started")
        elif args.action == "down":
            print("stopped" if docker.down() else "no Docker engine of this project runs")
        else:
            pid = docker.ours_running()
            answers = docker.engine_answers()
            print(f"engine answers: {answers}; project's dockerd: {pid or 'not running'}")
        return 0
    if args.command == "kind-image":
        from .kind.nodeimage import build_node_image

        print(build_node_image(args.k8s_version, tag=args.tag, force=args.force))
        return 0
    from .kind.tool import build_kind

    print(build_kind())
    return 0


def conformance(pytest_args: list[str]) -> int:
    """``k8s-sa conformance [--sut FILE] [pytest options]``: the installed suite, run by pytest in-process.

    The same as ``pytest --pyargs pytest_k8s_sa.suites ...`` (or ``pytest suites`` in a checkout) with
    ``--k8s-start-early``; every option of the plugin works (``--k8s-provider``,
    ``--conformance-report``, ...).
    """
    import pytest

    from .base.paths import suite_dir

    if pytest_args[:1] in (["-h"], ["--help"]):
        print(conformance.__doc__)
        return pytest.main([str(suite_dir()), "--help"])
    from .report.rerun import rerun_args

    pytest_args, failed = rerun_args(pytest_args)
    if failed == []:
        print("k8s-sa: the report has no failed check: nothing to re-run")
        return 0
    args = [str(suite_dir()), *pytest_args]
    if "cacheprovider" not in pytest_args:
        args[1:1] = ["-p", "no:cacheprovider"]  # no .pytest_cache inside site-packages
    if "--k8s-start-early" not in pytest_args and "K8S_SA_START_EARLY" not in os.environ:
        # The suite always needs its cluster; K8S_SA_START_EARLY=0 turns this off.
        args.append("--k8s-start-early")
    return int(pytest.main(args))


def _up(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="k8s-sa-up-"))
    try:
        settings = _settings(args, workdir)
    except BaseException:  # a bad option or variable: nothing started, nothing left behind
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    provider = build_provider(settings.provider, settings)
    try:
        # SIGTERM during a long start: the handler only sets ``stop``; create() finishes, then we stop.
        info = provider.create()
        kubeconfig = args.kubeconfig.expanduser().resolve()
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        print(f"ready {args.kubeconfig}", flush=True)
        logs = sorted({str(path.parent) for path in info.log_paths.values()})
        print(
            f"[k8s-sa] {info.provider} cluster, kubeconfig {kubeconfig}, logs in {', '.join(logs) or '-'}; "
            "stop with Ctrl-C or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        api_client = info.api_client()
        failures = 0
        try:
            while not stop.wait(timeout=LIVENESS_INTERVAL_SECONDS):
                failures = 0 if _alive(api_client) else failures + 1
                if failures >= LIVENESS_FAILURES and not stop.is_set():
                    print(
                        f"[k8s-sa] the apiserver stopped answering; stopping (see {', '.join(logs)})",
                        file=sys.stderr,
                    )
                    return 1
        finally:
            api_client.close()
    finally:
        provider.destroy()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["conformance"]:
        try:
            return conformance(argv[1:])  # every further argument is pytest's
        except K8sSAError as exc:
            print(f"k8s-sa: error: {exc}", file=sys.stderr)
            return 2
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            build_binaries(args.k8s_version, force=args.force)
            return 0
        if args.command in ("docker", "kind-image", "kind-bin"):
            return _kind_command(args)
        if args.command == "upstream-e2e":
            from .upstream_e2e.command import run as run_upstream_e2e

            return run_upstream_e2e(args)
        if args.command == "checks":
            from .catalogue.command import run as run_checks

            return run_checks(args)
        return _up(args)
    except K8sSAError as exc:
        print(f"k8s-sa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `k8s-sa checks | head`: the reader left; say nothing more (as cat does), and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
