"""The ``k8s-sa`` command: ``build`` the control-plane binaries, ``up`` a local cluster.

``k8s-sa up --kubeconfig PATH`` is how users debug, and how other tools reach a cluster just like
the one the tests use: it prints one line ``ready <kubeconfig>`` and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .binaries import DEFAULT_K8S_VERSION, build_binaries, find_binaries
from .controlplane import ControlPlane
from .errors import K8sSAError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k8s-sa", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="build etcd, kube-apiserver and kube-controller-manager from Go modules"
    )
    build.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, help=f"default {DEFAULT_K8S_VERSION}")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache has the binaries")
    up = sub.add_parser("up", help="run a local control plane in the foreground until SIGINT/SIGTERM")
    up.add_argument("--kubeconfig", required=True, type=Path, help="where to write the admin kubeconfig")
    up.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION)
    up.add_argument(
        "--k8s-bin-dir", default=None, help="folder with the three binaries (else cache or build)"
    )
    up.add_argument("--workdir", type=Path, default=None, help="keep PKI, logs and etcd data here (kept)")
    return parser


def _up(args: argparse.Namespace) -> int:
    binaries = find_binaries(args.k8s_version, args.k8s_bin_dir)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="k8s-sa-up-"))
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    control_plane = ControlPlane(workdir, binaries)
    try:
        control_plane.start()
        kubeconfig = args.kubeconfig.expanduser().resolve()
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(control_plane.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        print(f"ready {args.kubeconfig}", flush=True)
        print(
            f"[k8s-sa] server {control_plane.server}, issuer {control_plane.issuer}, "
            f"logs in {workdir / 'logs'}; stop with Ctrl-C or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(timeout=1.0):
            dead = [p.name for p in control_plane.processes if not p.running()]
            if dead:
                print(
                    f"[k8s-sa] {', '.join(dead)} exited; stopping (see {workdir / 'logs'})", file=sys.stderr
                )
                return 1
    finally:
        control_plane.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            build_binaries(args.k8s_version, force=args.force)
            return 0
        return _up(args)
    except K8sSAError as exc:
        print(f"k8s-sa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
