"""Build upstream's SIG Auth e2e test binary, kubectl and agnhost from a pinned Go module.

``gobuild/e2e-v<version>`` holds ``go.mod``/``go.sum`` (pinned, the same ``k8s.io/*`` replaces as
the control-plane wrapper) and ``e2e_test.go``, a small test package that blank-imports
``k8s.io/kubernetes/test/e2e/auth``. ``go test -c`` of it is the e2e binary (78 MB; see BENCHMARKS.md for
build times). kubectl (the specs ``kubectl exec`` into pods) and
agnhost (the specs' test image) come from the same module, so every piece matches the cluster's
version. Everything lands in ``<cache>/e2e/e2e-v<version>-<module digest>`` under a file lock, as
the control-plane binaries do (:mod:`pytest_k8s_sa.components.binaries`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..base.errors import BuildError
from ..base.paths import cache_root
from ..components.binaries import (
    DEFAULT_K8S_VERSION,
    Progress,
    _executable,
    _go,
    _ldflags,
    _module_digest,
    _run,
    normalize_version,
    publish_build,
    stderr_progress,
)

TAGS = "selinux,notest"
"""The control-plane build's tags, so the Go build cache it left is reused."""

E2E_TEST = "e2e.test"
TOOLS: Mapping[str, str] = {
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "agnhost": "k8s.io/kubernetes/test/images/agnhost",
}


@dataclass(frozen=True)
class E2EBinaries:
    """The e2e test binary and the two helpers built with it."""

    e2e_test: Path
    kubectl: Path
    agnhost: Path
    version: str


def e2e_module(version: str) -> Path:
    """The pinned wrapper module for ``version``; a clear error when there is none."""
    version = normalize_version(version)
    module = Path(__file__).resolve().parent.parent / "gobuild" / f"e2e-v{version}"
    if not (module / "go.mod").is_file() or not (module / "e2e_test.go").is_file():
        shipped = sorted(
            p.name.removeprefix("e2e-v") for p in (module.parent).glob("e2e-v*") if (p / "go.mod").is_file()
        )
        raise BuildError(
            f"There is no pinned e2e module for Kubernetes v{version} (shipped: {', '.join(shipped)}). "
            f"Run against a cluster of a shipped version, or add gobuild/e2e-v{version} (copy an existing "
            "one, change the versions, `go mod tidy`)."
        )
    return module


def e2e_cache_dir(version: str) -> Path:
    version = normalize_version(version)
    return cache_root() / "e2e" / f"e2e-v{version}-{_module_digest(e2e_module(version))}"


def find_e2e_binaries(
    version: str = DEFAULT_K8S_VERSION,
    *,
    build: bool = True,
    progress: Progress = stderr_progress,
    force: bool = False,
) -> E2EBinaries:
    """The cached binaries, built first when missing (``build``) or when ``force`` is set."""
    version = normalize_version(version)
    target = e2e_cache_dir(version)
    names = (E2E_TEST, *TOOLS)
    if not force and all(_executable(target / n) for n in names):
        return _binaries(target, version)
    if not build:
        raise BuildError(
            f"The e2e binaries for Kubernetes v{version} are not built ({target}); run "
            "`k8s-sa upstream-e2e --build-only` (needs Go; minutes with a warm Go build cache)."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if force or not all(_executable(target / n) for n in names):
            _build_into(target, version, progress)
    return _binaries(target, version)


def _binaries(target: Path, version: str) -> E2EBinaries:
    return E2EBinaries(target / E2E_TEST, target / "kubectl", target / "agnhost", version)


def _build_into(target: Path, version: str, progress: Progress) -> None:
    module = e2e_module(version)
    go = _go()
    env = {**os.environ, "CGO_ENABLED": "0"}
    started = time.monotonic()
    progress(
        f"building the SIG Auth e2e binary, kubectl and agnhost for Kubernetes v{version} into {target} "
        "(first time only; minutes with a warm Go build cache, about 20 min with an empty one)"
    )
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        flags = ["-trimpath", "-buildvcs=false", "-tags", TAGS, "-ldflags", _ldflags(version)]
        # The test's dependencies first with `go build -v`, whose package lines are the progress;
        # `go test -c` then compiles only the test package itself and links.
        imports = _run(
            [go, "list", "-tags", TAGS, "-f", '{{join .TestImports "\\n"}}', "."], module, env, "go list"
        ).split()
        _go_build_v(go, module, env, flags, imports, None, "e2e.test dependencies", progress)
        _run_with_heartbeat(
            [go, "test", "-c", *flags, "-o", str(staging / E2E_TEST), "."],
            module,
            env,
            "compiling the test package and linking e2e.test (`go test -c`)",
            progress,
        )
        for name, package in TOOLS.items():
            _go_build_v(go, module, env, flags, [package], staging / name, name, progress)
        seconds = round(time.monotonic() - started, 1)
        info = {"version": version, "module": module.name, "build_seconds": seconds}
        publish_build(staging, target, go, module, env, info)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"e2e binaries ready in {target} ({time.monotonic() - started:.0f}s)")


def _run_with_heartbeat(
    argv: list[str], cwd: Path, env: Mapping[str, str], what: str, progress: Progress
) -> None:
    """Run a quiet command, saying every 30 s that it is still at work (linking takes minutes)."""
    progress(f"{what} ...")
    started = time.monotonic()
    with subprocess.Popen(
        argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        while True:
            try:
                output, _ = proc.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                progress(f"{what}: still running, {time.monotonic() - started:.0f}s")
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    progress(f"done in {time.monotonic() - started:.0f}s: {what}")


def _go_build_v(
    go: str,
    module: Path,
    env: Mapping[str, str],
    flags: list[str],
    packages: list[str],
    output: Path | None,
    what: str,
    progress: Progress,
) -> None:
    """``go build -v``, reporting every 10 s how many of the packages it needs are compiled."""
    deps = _run([go, "list", "-tags", TAGS, "-deps", *packages], module, env, f"go list {what}")
    total = len(deps.split())
    progress(f"building {what} ({total} packages, cached ones are skipped) ...")
    argv = [go, "build", "-v", *flags]
    if output is not None:
        argv += ["-o", str(output)]
    started = last = time.monotonic()
    log: list[str] = []
    with subprocess.Popen(
        [*argv, *packages],
        cwd=module,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for compiled, line in enumerate(proc.stdout, start=1):
            log.append(line.rstrip())
            now = time.monotonic()
            if now - last >= 10:
                progress(f"building {what}: {min(compiled, total)}/{total} compiled, {now - started:.0f}s")
                last = now
        code = proc.wait()
    if code != 0:
        tail = "\n".join(log[-30:])
        raise BuildError(
            f"go build of {what} failed (exit {code}).\n{tail}\nIf the Go module proxy is unreachable "
            "or a checksum lookup fails, retry with GOSUMDB=off (go.sum is pinned) or set GOPROXY."
        )
    progress(f"built {what} in {time.monotonic() - started:.0f}s")
