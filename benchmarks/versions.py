"""Versions proven: `python benchmarks/versions.py [--providers local,local-node]` (or `nox -s versions`).

For the latest patch of each supported minor (1.34-1.37) that the Go module proxy offers
(``go list -m -versions k8s.io/kubernetes`` with the machine's Go settings), one version at a time:

1. build the control plane (``k8s-sa build --k8s-version X``, a subprocess so its progress shows)
   and record the seconds (``cached`` when the binaries were already there: then the figure is not
   a build time);
2. run the conformance ``fast`` profile on each provider asked for (``pytest suites --k8s-version X``,
   a plain subprocess) and record exit code, seconds, the report's summary and each check's outcome;
   for local-node, the node components (kubelet, kube-proxy, kube-scheduler: their own wrapper
   module per version) are built first and timed separately.

Results are merged into ``benchmarks/results/versions.json`` (keyed by version and provider, so a
sweep can be resumed or extended); the full reports land next to it in ``results/versions/``.
BENCHMARKS.md and README quote them by hand. Builds are CPU heavy: run it on a quiet machine, and
expect several minutes per version with a cold Go build cache. ``--pin`` first writes pinned wrapper
modules into ``pytest_k8s_sa/gobuild/`` for versions that have none (commit them once proven).
local-node allows one node per machine: a run finding another one waits for it (``--node-wait``).
Not part of CI, which builds and proves the default version only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_k8s_sa.components.binaries import (
    COMPONENTS,
    SUPPORTED_MINORS,
    node_binaries,
    normalize_version,
    pin_wrapper_modules,
    version_cache_dir,
)
from pytest_k8s_sa.components.node.node import state_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PROVIDERS = ("local", "local-node")


def latest_patches() -> list[str]:
    """The newest published patch of every supported minor, as the machine's Go settings see them."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("`go` is not on PATH: install Go 1.26 or newer to build Kubernetes.")
    proc = subprocess.run(
        [go, "list", "-m", "-versions", "k8s.io/kubernetes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"`go list -m -versions k8s.io/kubernetes` failed:\n{proc.stderr.strip()}")
    newest: dict[int, tuple[int, int]] = {}
    for tag in proc.stdout.split()[1:]:
        match = re.fullmatch(r"v1\.(\d+)\.(\d+)", tag)  # releases only, no -alpha/-rc
        if match and int(match[1]) in SUPPORTED_MINORS:
            minor, patch = int(match[1]), int(match[2])
            newest[minor] = max(newest.get(minor, (minor, patch)), (minor, patch))
    return [f"1.{minor}.{patch}" for minor, patch in sorted(newest.values())]


def _cached(version: str) -> bool:
    return all((version_cache_dir(version) / name).is_file() for name in COMPONENTS)


def build_control_plane(version: str) -> dict[str, Any]:
    cached = _cached(version)
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_k8s_sa.cli", "build", "--k8s-version", version], check=False
    )
    return {
        "ok": proc.returncode == 0,
        "seconds": round(time.perf_counter() - started, 1),
        "cached": cached,
        "load_before": round(load, 1),
    }


def build_node(version: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        node_binaries(version)
    except Exception as exc:  # a BuildError, reported in the results rather than ending the sweep
        return {"ok": False, "seconds": round(time.perf_counter() - started, 1), "error": str(exc)[-2000:]}
    return {"ok": True, "seconds": round(time.perf_counter() - started, 1)}


NODE_BUSY = "another local node runs on this machine"


def wait_for_node_lock(deadline: float) -> bool:
    """Wait until no other local node holds the machine-wide lock (one node per machine), without
    taking it for longer than the check: the suite's own provider takes it right after."""
    lock = FileLock(str(state_dir() / "node.lock"))
    state_dir().mkdir(parents=True, exist_ok=True)
    while time.monotonic() < deadline:
        try:
            lock.acquire(timeout=min(60.0, max(1.0, deadline - time.monotonic())))
        except Timeout:
            print("   the local-node lock is held by another run; waiting", flush=True)
            continue
        lock.release()
        return True
    return False


def run_suite(version: str, provider: str, profile: str, node_wait: float) -> dict[str, Any]:
    """``pytest suites`` as a plain subprocess (the kubernetes client does not survive pytester).

    On local-node, a run refused because another node holds the machine's lock is retried once the
    lock is free, until ``node_wait`` seconds have passed."""
    deadline = time.monotonic() + node_wait
    while True:
        if provider == "local-node" and not wait_for_node_lock(deadline):
            return {"exit_code": None, "error": f"the local-node lock stayed held for {node_wait:.0f} s"}
        result = _run_suite_once(version, provider, profile)
        busy = result.pop("node_busy")
        if not (busy and time.monotonic() < deadline):
            return result
        print("   refused: another local node started first; waiting for it", flush=True)


def _run_suite_once(version: str, provider: str, profile: str) -> dict[str, Any]:
    report = RESULTS / "versions" / f"{provider}-v{version}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "suites",
        "-p",
        "no:cacheprovider",
        "-q",
        "--k8s-version",
        version,
        "--k8s-provider",
        provider,
        "--conformance-profile",
        profile,
        "--conformance-report",
        str(report),
    ]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "report": str(report.relative_to(ROOT)),
    }
    if report.is_file():
        data = json.loads(report.read_text())
        result["server_version"] = data.get("server_version")
        result["summary"] = data.get("summary")
        result["checks"] = {c["id"]: c["outcome"] for c in data.get("checks", [])}
        result["skipped_because"] = {
            c["id"]: c.get("message") for c in data.get("checks", []) if c["outcome"] == "skipped"
        }
    result["node_busy"] = provider == "local-node" and NODE_BUSY in proc.stdout + proc.stderr
    if proc.returncode != 0:
        result["output_tail"] = (proc.stdout + proc.stderr)[-4000:]
    return result


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


RESULTS_FILE = RESULTS / "versions.json"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {"versions": {}}


def _save(path: Path, version: str, entry: dict[str, Any]) -> None:
    """Merge one version's entry into the file as it is now (another sweep may be writing others)."""
    results = _load(path)
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    results["versions"].setdefault(version, {}).update(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--versions", help="comma-separated, e.g. 1.34.4,1.37.2 (default: latest patch of each minor)"
    )
    parser.add_argument("--providers", default="local", help=f"comma-separated of {', '.join(PROVIDERS)}")
    parser.add_argument("--profile", default="fast", choices=("fast", "full"))
    parser.add_argument(
        "--pin",
        action="store_true",
        help="first write pinned wrapper modules (pytest_k8s_sa/gobuild/vX, node-vX) for versions without",
    )
    parser.add_argument(
        "--node-wait",
        type=float,
        default=1800,
        help="seconds to wait for another run's local node to finish (one node per machine)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="default %(default)s")
    args = parser.parse_args()
    results_file: Path = args.results.resolve()
    providers = [p for p in args.providers.split(",") if p]
    if unknown := set(providers) - set(PROVIDERS):
        parser.error(f"unknown provider(s) {', '.join(sorted(unknown))}; choose from {', '.join(PROVIDERS)}")
    versions = [normalize_version(v) for v in args.versions.split(",")] if args.versions else latest_patches()
    print(f"versions: {', '.join(versions)}; providers: {', '.join(providers)}", flush=True)
    failed = False
    for version in versions:
        entry: dict[str, Any] = _load(results_file)["versions"].get(version, {})
        if args.pin:
            entry["pinned"] = [p.name for p in pin_wrapper_modules(version, node="local-node" in providers)]
        print(f"== v{version}: building the control plane", flush=True)
        build = build_control_plane(version)
        build["date"] = _now()
        if build["cached"] and entry.get("build", {}).get("cached") is False:
            build = {**entry["build"], "cached_since": True}  # keep the figure of the real build
        entry["build"] = build
        _save(results_file, version, entry)
        if not entry["build"]["ok"]:
            failed = True
            continue
        for provider in providers:
            run: dict[str, Any] = {"date": _now(), "load_before": round(os.getloadavg()[0], 1)}
            if provider == "local-node":
                print(f"== v{version}: building the node components", flush=True)
                run["node_build"] = build_node(version)
                if not run["node_build"]["ok"]:
                    entry[provider] = run
                    failed = True
                    _save(results_file, version, entry)
                    continue
            print(f"== v{version}: {args.profile} profile on {provider}", flush=True)
            run.update(run_suite(version, provider, args.profile, args.node_wait))
            entry[provider] = run
            failed |= run.get("exit_code") != 0
            print(
                f"   exit {run.get('exit_code')} in {run.get('seconds')} s: {run.get('summary')}", flush=True
            )
            _save(results_file, version, entry)
    summary = {
        v: {k: e.get(k) for k in ("build", *providers)} for v, e in _load(results_file)["versions"].items()
    }
    print(json.dumps(summary, indent=2, default=str)[:6000])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
