"""Find the control-plane binaries, or build them from Go modules and cache them.

No release binary can be downloaded on the machines this project targets, so etcd,
kube-apiserver and kube-controller-manager are built from the Go module proxy through a small
wrapper module kept in this package (``gobuild/v<version>/go.mod`` and ``go.sum``, pinned). A
wrapper is needed because ``go install k8s.io/kubernetes/cmd/...@vX`` is refused: the kubernetes
module replaces its ``k8s.io/*`` staging modules with local paths, so the wrapper replaces each of
them with the published ``v0.Y.Z`` instead.

Lookup precedence, per binary, as in controller-runtime's envtest: an explicit directory
(``--k8s-bin-dir``) > ``$K8S_SA_BIN_DIR`` > ``$KUBEBUILDER_ASSETS`` (envtest's setup tool puts
etcd and kube-apiserver there, not the controller manager) > the cache > a build on demand.
A folder named by the user (the first two) must hold all three: nothing is built behind its back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..base.errors import BinaryNotFoundError, BuildError
from ..base.paths import PACKAGE_DIR, cache_root

DEFAULT_K8S_VERSION = "1.37.2"
"""The newest Kubernetes release that builds here (Go 1.26); its go.mod/go.sum ship pinned."""

SUPPORTED_MINORS = (34, 35, 36, 37)

COMPONENTS: Mapping[str, str] = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
}

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    """The default :data:`Progress`: one ``[k8s-sa] ...`` line on stderr, flushed at once."""
    print(f"[k8s-sa] {message}", file=sys.stderr, flush=True)


def normalize_version(version: str) -> str:
    """``v1.37.2`` / ``1.37.2`` -> ``1.37.2``; refuse what this project cannot build."""
    match = re.fullmatch(r"v?(1)\.(\d+)\.(\d+)", version.strip())
    if not match:
        raise BuildError(f"Kubernetes version {version!r} is not of the form 1.MINOR.PATCH (e.g. 1.37.2).")
    if int(match[2]) not in SUPPORTED_MINORS:
        supported = ", ".join(f"1.{m}" for m in SUPPORTED_MINORS)
        raise BuildError(f"Kubernetes {version} is not supported; choose a version of {supported}.")
    return f"{match[1]}.{match[2]}.{match[3]}"


def version_cache_dir(version: str) -> Path:
    return cache_root() / f"v{normalize_version(version)}"


@dataclass(frozen=True)
class Binaries:
    """Paths of the three control-plane binaries and where each was found."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    sources: Mapping[str, str]

    def path(self, component: str) -> Path:
        return {
            "etcd": self.etcd,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
        }[component]


def _candidates(explicit_dir: str | Path | None, version: str) -> list[tuple[str, Path]]:
    places: list[tuple[str, Path]] = []
    if explicit_dir:
        places.append(("--k8s-bin-dir", Path(explicit_dir)))
    for var in ("K8S_SA_BIN_DIR", "KUBEBUILDER_ASSETS"):
        if os.environ.get(var):
            places.append((f"${var}", Path(os.environ[var])))
    places.append(("cache", version_cache_dir(version)))
    return places


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binaries(
    version: str = DEFAULT_K8S_VERSION,
    explicit_dir: str | Path | None = None,
    *,
    build: bool = True,
    progress: Progress = stderr_progress,
) -> Binaries:
    """Find every component; build the missing ones into the cache when ``build`` is true.

    Raises :class:`BinaryNotFoundError` naming every place it looked when a binary is missing and
    building is off, or :class:`BuildError` when the build fails.
    """
    version = normalize_version(version)
    places = _candidates(explicit_dir, version)
    found: dict[str, Path] = {}
    sources: dict[str, str] = {}
    for component in COMPONENTS:
        for label, directory in places:
            if _executable(directory / component):
                found[component], sources[component] = directory / component, label
                break
    missing = [c for c in COMPONENTS if c not in found]
    if missing and (explicit_dir or os.environ.get("K8S_SA_BIN_DIR")):
        why = "a folder was named with --k8s-bin-dir or $K8S_SA_BIN_DIR, so nothing is built"
        raise BinaryNotFoundError(_not_found_message(missing, places, why))
    if missing and not build:
        raise BinaryNotFoundError(_not_found_message(missing, places, "building is disabled"))
    if missing:
        progress(
            f"{', '.join(missing)} for Kubernetes v{version} not found; building from Go modules "
            f"into {version_cache_dir(version)} (first time only, several minutes)"
        )
        built = build_binaries(version, progress=progress)
        for component in missing:
            found[component], sources[component] = built / component, "built"
    return Binaries(found["etcd"], found["kube-apiserver"], found["kube-controller-manager"], sources)


def _not_found_message(missing: list[str], places: list[tuple[str, Path]], why: str) -> str:
    looked = "\n".join(f"  - {label}: {path}" for label, path in places)
    return (
        f"Missing Kubernetes binaries: {', '.join(missing)} ({why}). Looked in:\n{looked}\n"
        "Build them with `k8s-sa build` (needs Go), or point --k8s-bin-dir / $K8S_SA_BIN_DIR at a "
        "folder holding etcd, kube-apiserver and kube-controller-manager."
    )


# --- building ------------------------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "The Go toolchain (`go`) is not on PATH. Install Go 1.26 or newer (e.g. `apt-get install "
            "golang` or from go.dev), or provide prebuilt binaries with --k8s-bin-dir / $K8S_SA_BIN_DIR."
        )
    return go


def _run(argv: list[str], cwd: Path, env: Mapping[str, str], what: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def publish_build(
    out: Path, target: Path, go: str, module: Path, env: Mapping[str, str], info: dict[str, object]
) -> None:
    """Stamp ``BUILD-INFO.json`` into a finished staging folder, then move it to its cache entry.

    The rename is the commit point: a build killed before it leaves only staging behind, never a
    half-filled cache entry that the next lookup would trust.
    """
    stamp = {
        **info,
        "go": _run([go, "version"], module, env, "go version").strip(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "BUILD-INFO.json").write_text(json.dumps(stamp, indent=2))
    if target.exists():
        shutil.rmtree(target)
    out.rename(target)


def _pinned_module(version: str) -> Path | None:
    path = PACKAGE_DIR / "gobuild" / f"v{version}"
    return path if (path / "go.mod").is_file() and (path / "go.sum").is_file() else None


def _kubernetes_gomod(go: str, version: str, workdir: Path, env: Mapping[str, str]) -> str:
    """The go.mod of ``k8s.io/kubernetes@v<version>`` (downloaded through the machine's Go settings)."""
    info = json.loads(
        _run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@v{version}"],
            workdir,
            env,
            "Downloading k8s.io/kubernetes",
        )
    )
    return Path(info["GoMod"]).read_text()


def _staging_modules(gomod: str) -> list[str]:
    """The ``k8s.io/*`` modules that kubernetes vX replaces with ./staging paths."""
    return re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, flags=re.M)


CONTROL_PLANE_MODULE = "github.com/pytest-k8s-sa/k8s-build"
NODE_MODULE = "github.com/pytest-k8s-sa/node-build"
NODE_COMMANDS = ("kubelet", "kube-scheduler", "kube-proxy")


def node_module_packages() -> tuple[str, ...]:
    """The tools of a node wrapper module: the control plane's, so both resolve to the same
    dependency versions, plus kubelet, kube-scheduler and kube-proxy."""
    return (*COMPONENTS.values(), *(f"k8s.io/kubernetes/cmd/{name}" for name in NODE_COMMANDS))


def write_wrapper_module(
    go: str,
    version: str,
    directory: Path,
    env: Mapping[str, str],
    *,
    module_path: str = CONTROL_PLANE_MODULE,
    packages: tuple[str, ...] | None = None,
) -> None:
    """Write (and tidy) a wrapper go.mod requiring ``k8s.io/kubernetes v<version>``.

    Used for a version with no pinned module in the package, and to pin one
    (``benchmarks/versions.py --pin``). The ``godebug`` line of kubernetes' own go.mod is copied:
    only the main module's counts, and it sets runtime defaults (TLS, x509) of the binaries.
    """
    minor, patch = version.split(".")[1:]
    gomod = _kubernetes_gomod(go, version, directory, env)
    staging = _staging_modules(gomod)
    if not staging:
        raise BuildError(f"Could not read the staging modules of k8s.io/kubernetes v{version}.")
    godebug = re.search(r"^godebug\s+.+$", gomod, flags=re.M)
    tools = "\n".join(f"\t{pkg}" for pkg in (packages or tuple(COMPONENTS.values())))
    replaces = "\n".join(f"\t{m} => {m} v0.{minor}.{patch}" for m in staging)
    (directory / "go.mod").write_text(
        f"module {module_path}\n\ngo 1.24.0\n\n"
        + (f"{godebug[0]}\n\n" if godebug else "")
        + f"tool (\n{tools}\n)\n\nrequire k8s.io/kubernetes v{version}\n\nreplace (\n{replaces}\n)\n"
    )
    _run([go, "mod", "tidy"], directory, env, "go mod tidy of the wrapper module")


def pin_wrapper_modules(
    version: str, *, node: bool = True, progress: Progress = stderr_progress
) -> list[Path]:
    """Write ``gobuild/v<version>`` (and ``gobuild/node-v<version>``) into this package, so later
    builds of that version use a reviewed, pinned go.sum instead of whatever ``go mod tidy`` finds.

    Existing pinned modules are left alone. Returns the folders written."""
    version = normalize_version(version)
    go, env = _go(), {**os.environ, "CGO_ENABLED": "0"}
    root = PACKAGE_DIR / "gobuild"
    wanted: list[tuple[Path, str, tuple[str, ...] | None]] = [
        (root / f"v{version}", CONTROL_PLANE_MODULE, None)
    ]
    if node:
        wanted.append((root / f"node-v{version}", NODE_MODULE, node_module_packages()))
    written = []
    for directory, module_path, packages in wanted:
        if (directory / "go.mod").is_file() and (directory / "go.sum").is_file():
            continue
        progress(f"pinning {directory.name}: go mod tidy ...")
        directory.mkdir(parents=True, exist_ok=True)
        write_wrapper_module(go, version, directory, env, module_path=module_path, packages=packages)
        written.append(directory)
    return written


def _ldflags(version: str) -> str:
    major, minor, _ = version.split(".")
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {pkg}.gitVersion=v{version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    )


def build_binaries(
    version: str = DEFAULT_K8S_VERSION, *, progress: Progress = stderr_progress, force: bool = False
) -> Path:
    """Build etcd, kube-apiserver and kube-controller-manager into the version's cache folder.

    Safe to call from several processes (pytest-xdist workers): a file lock makes one build and
    the others wait for it; the result is moved into place only when complete.
    """
    version = normalize_version(version)
    target = version_cache_dir(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not force and all(_executable(target / c) for c in COMPONENTS):
            progress(f"Kubernetes v{version} binaries already cached in {target}")
            return target
        go = _go()
        env = {**os.environ, "CGO_ENABLED": "0"}
        staging = Path(tempfile.mkdtemp(prefix=f"v{version}.", dir=target.parent))
        try:
            module = _pinned_module(version)
            if module is None:
                progress(f"no pinned wrapper module for v{version}; resolving one with `go mod tidy`")
                module = staging / "module"
                module.mkdir()
                write_wrapper_module(go, version, module, env)
            out = staging / "bin"
            out.mkdir()
            for component, package in COMPONENTS.items():
                _build_one(go, module, package, out / component, version, env, progress)
            publish_build(out, target, go, module, env, {"version": version})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"Kubernetes v{version} binaries ready in {target}")
    return target


def _build_one(
    go: str,
    module: Path,
    package: str,
    output: Path,
    version: str,
    env: Mapping[str, str],
    progress: Progress,
) -> None:
    """``go build -v`` one component, reporting how many of its packages are compiled so far."""
    deps = _run([go, "list", "-tags", "selinux,notest", "-deps", package], module, env, f"go list {package}")
    total = len(deps.split())
    name = output.name
    progress(f"building {name} ({total} packages) ...")
    argv = [
        go,
        "build",
        "-v",
        "-trimpath",
        "-buildvcs=false",
        "-tags",
        "selinux,notest",
        "-ldflags",
        _ldflags(version),
        "-o",
        str(output),
        package,
    ]
    started = time.monotonic()
    with subprocess.Popen(
        argv, cwd=module, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        last_report, log = started, []
        for compiled, line in enumerate(proc.stdout, start=1):
            log.append(line.rstrip())
            now = time.monotonic()
            if now - last_report >= 10:
                progress(
                    f"building {name}: {min(compiled, total)}/{total} packages compiled, {now - started:.0f}s"
                )
                last_report = now
        code = proc.wait()
    if code != 0:
        tail = "\n".join(log[-30:])
        raise BuildError(
            f"go build of {package} failed (exit {code}).\n{tail}\nIf the Go module proxy "
            "is unreachable or a checksum lookup fails, retry with GOSUMDB=off "
            "(go.sum is pinned) or set GOPROXY."
        )
    progress(f"built {name} in {time.monotonic() - started:.0f}s")


# --- node components (the local-node provider only) ------------------------------------------
#
# Built only when ``--k8s-provider local-node`` needs them, never by the default build above: the
# kubelet alone takes ~1 min with a warm Go build cache and ~6.5 min cold on two cores.


@dataclass(frozen=True)
class GoTool:
    """One binary of a node component set: its main package, build tags and extra ldflags."""

    name: str
    package: str
    tags: str = ""
    ldflags: str = "-s -w"


@dataclass(frozen=True)
class ComponentSet:
    """Binaries built together from one wrapper module kept in ``gobuild/<module>``."""

    name: str
    module: str
    tools: tuple[GoTool, ...]


def _node_sets(version: str) -> dict[str, ComponentSet]:
    kube_ldflags = _ldflags(version)
    containerd = "v2.3.7"
    containerd_ldflags = f"-s -w -X github.com/containerd/containerd/v2/version.Version={containerd}"
    return {
        # Same tags as the control-plane build, so the Go build cache it left is reused.
        "kubernetes-node": ComponentSet(
            f"kubernetes-node-v{version}",
            f"node-v{version}",
            tuple(
                GoTool(name, f"k8s.io/kubernetes/cmd/{name}", "selinux,notest", kube_ldflags)
                for name in NODE_COMMANDS
            ),
        ),
        # Tags as in containerd's Makefile; btrfs needs cgo and is left out.
        "containerd": ComponentSet(
            f"containerd-{containerd}",
            f"containerd-{containerd}",
            (
                GoTool(
                    "containerd",
                    "github.com/containerd/containerd/v2/cmd/containerd",
                    "urfave_cli_no_docs,no_btrfs",
                    containerd_ldflags,
                ),
                GoTool(
                    "ctr",
                    "github.com/containerd/containerd/v2/cmd/ctr",
                    "urfave_cli_no_docs,no_btrfs",
                    containerd_ldflags,
                ),
                GoTool(
                    "containerd-shim-runc-v2",
                    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                    "urfave_cli_no_docs,no_grpc",
                    containerd_ldflags,
                ),
            ),
        ),
        "coredns": ComponentSet(
            "coredns-v1.15.0", "coredns-v1.15.0", (GoTool("coredns", "github.com/coredns/coredns"),)
        ),
        "pause": ComponentSet("pause", "pause", (GoTool("pause", "."),)),
    }


NODE_COMPONENT_SETS = ("kubernetes-node", "containerd", "coredns", "pause")


def node_binaries(
    version: str = DEFAULT_K8S_VERSION, *, progress: Progress = stderr_progress
) -> dict[str, Path]:
    """Every binary the local-node provider runs, built on first use into the cache.

    Returns ``{binary name: path}`` for kubelet, kube-scheduler, kube-proxy, containerd, ctr,
    containerd-shim-runc-v2, coredns and pause. One ``go build`` at a time.
    """
    version = normalize_version(version)
    found: dict[str, Path] = {}
    for key in NODE_COMPONENT_SETS:
        directory = build_component_set(_node_sets(version)[key], progress=progress)
        for tool in _node_sets(version)[key].tools:
            found[tool.name] = directory / tool.name
    return found


def resolved_node_module(version: str, *, progress: Progress = stderr_progress) -> Path:
    """A node wrapper module for a version with none pinned in the package: resolved once with
    ``go mod tidy`` into ``<cache>/gobuild/node-v<version>`` (under a file lock) and reused."""
    version = normalize_version(version)
    target = cache_root() / "gobuild" / f"node-v{version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "go.mod").is_file() and (target / "go.sum").is_file():
            return target
        progress(f"no pinned node wrapper module for v{version}; resolving one with `go mod tidy`")
        go, env = _go(), {**os.environ, "CGO_ENABLED": "0"}
        staging = Path(tempfile.mkdtemp(prefix=f"node-v{version}.", dir=target.parent))
        try:
            write_wrapper_module(
                go, version, staging, env, module_path=NODE_MODULE, packages=node_module_packages()
            )
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _module_digest(module: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(module.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def build_component_set(
    components: ComponentSet, *, progress: Progress = stderr_progress, force: bool = False
) -> Path:
    """Build one component set into ``<cache>/node/<name>-<module digest>``, under a file lock."""
    module = PACKAGE_DIR / "gobuild" / components.module
    if not (module / "go.mod").is_file() and components.module.startswith("node-v"):
        module = resolved_node_module(components.module.removeprefix("node-v"), progress=progress)
    if not (module / "go.mod").is_file():
        raise BuildError(f"The wrapper module {module} is missing (package data not installed?).")
    target = cache_root() / "node" / f"{components.name}-{_module_digest(module)}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not force and all(_executable(target / t.name) for t in components.tools):
            return target
        go = _go()
        env = {**os.environ, "CGO_ENABLED": "0"}
        staging = Path(tempfile.mkdtemp(prefix=f"{components.name}.", dir=target.parent))
        try:
            for tool in components.tools:
                started = time.monotonic()
                progress(f"building {tool.name} from {tool.package} (first time only) ...")
                argv = [go, "build", "-trimpath", "-buildvcs=false", "-ldflags", tool.ldflags]
                if tool.tags:
                    argv += ["-tags", tool.tags]
                _run(
                    [*argv, "-o", str(staging / tool.name), tool.package],
                    module,
                    env,
                    f"go build {tool.name}",
                )
                progress(f"built {tool.name} in {time.monotonic() - started:.0f}s")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
