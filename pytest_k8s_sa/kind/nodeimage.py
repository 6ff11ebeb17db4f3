"""Build a kind node image on this machine: no registry, no downloaded release binary.

What kind needs from a node image (read from kind's source, ``pkg/cluster/internal/create`` and
``pkg/build/nodeimage``; the files here are the project's own):

* an init that runs systemd after the container-specific fixes (``files/bin/k8s-sa-node-entrypoint``,
  started as ``ENTRYPOINT [entrypoint, /sbin/init]``), with containerd and a kubelet unit kubeadm
  can start (``files/systemd``, kubelet configured by kubeadm, cgroup driver systemd);
* ``kubeadm``, ``kubelet`` and ``kubectl`` in ``/usr/bin`` (kind runs ``kubeadm init`` and
  ``kubectl`` inside the node);
* ``/kind/version`` (the Kubernetes version), ``/kind/manifests/default-cni.yaml`` (applied by
  kind, templated with the pod subnet when it carries kind's marker comment) and
  ``/kind/manifests/default-storage.yaml``;
* every image ``kubeadm config images list`` names, already in containerd's ``k8s.io`` namespace
  (``ctr images import`` while the image is built; the node's containerd finds them at start and
  never pulls: its registry mirrors point at a closed loopback port).

The pieces: a Debian rootfs by ``mmdebstrap`` (systemd, containerd, runc, CNI plugins, iptables),
the kubelet/kubeadm/kubectl/scheduler/proxy built from the node wrapper module, the control
plane from the control-plane wrapper module, CoreDNS and pause as built for local-node, and the
workloads' python image (Debian's python3, tagged as the manifests' default image). The result is
tagged ``kindest/node:v<version>``, the name the kind provider asks for, and labelled with a key
computed from every input: an image with the same key is reused, ``force`` rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..base.errors import BuildError
from ..base.paths import cache_root
from ..components.binaries import (
    ComponentSet,
    GoTool,
    Progress,
    _ldflags,
    _node_sets,
    build_component_set,
    find_binaries,
    normalize_version,
    stderr_progress,
)
from ..components.node import aptsources, images
from ..components.node.images import PLACEHOLDER_IMAGE

FILES = Path(__file__).parent / "files"
IMAGE_KEY_LABEL = "io.pytest-k8s-sa.node-image-key"
ENTRYPOINT = "/usr/local/bin/k8s-sa-node-entrypoint"
WORKLOAD_IMAGE = "docker.io/library/python:3.11-slim"
"""The workloads' default image name (deploy.DEFAULT_IMAGE), served by Debian's python3."""
TOOLS_IMAGE = images.PYTHON_IMAGE
"""The image the CNI DaemonSet runs (it needs a shell): the same Debian python image."""

NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "nftables",
    "conntrack",
    "iproute2",
    "kmod",
    "mount",
    "util-linux",
    "procps",
    "ethtool",
    "socat",
    "ca-certificates",
)
PROXY_PACKAGES = ("iptables", "nftables", "conntrack", "kmod")


def default_image(version: str) -> str:
    """The image name the kind provider uses for ``version``: ``kindest/node:v1.37.2``."""
    return f"kindest/node:v{normalize_version(version)}"


def kind_dir() -> Path:
    return cache_root() / "kind"


def docker_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise BuildError(
            "building the kind node image needs the `docker` CLI and an engine: "
            "`apt-get install -y docker.io` (then `k8s-sa docker up` as root starts one if none runs)."
        )
    return docker


def _run(argv: list[str], what: str, timeout: float = 1800.0, stdin: bytes | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, check=False, timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} did not finish within {timeout:.0f}s: {' '.join(argv)}") from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        tail = "\n".join(output.splitlines()[-30:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout.decode(errors="replace")


def _sha(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- Debian root filesystems -------------------------------------------------------------------


def debian_rootfs(name: str, variant: str, packages: Iterable[str], progress: Progress) -> Path:
    """A Debian rootfs tarball by mmdebstrap, cached by its package list (about 1-2 min once)."""
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap builds the node's Debian rootfs: `apt-get install -y mmdebstrap`.")
    wanted = sorted(packages)
    # This machine's apt sources (or --k8s-apt-mirror's $K8S_SA_APT_MIRROR), part of the cache key.
    sources = aptsources.resolve(images.DEBIAN_SUITE)
    key = _sha(images.DEBIAN_SUITE, variant, *wanted, "2", sources.key)[:12]
    target = kind_dir() / f"rootfs-{name}-{key}.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            return target
        started = time.monotonic()
        progress(f"building the {name} rootfs from Debian {images.DEBIAN_SUITE} with mmdebstrap (once) ...")
        partial = target.with_suffix(".partial.tar")
        sources_dir = Path(tempfile.mkdtemp(prefix=f"k8s-sa-{name}-sources-", dir=target.parent))
        try:
            _run(
                [
                    "mmdebstrap",
                    "--quiet",
                    f"--variant={variant}",
                    "--aptopt=APT::Install-Recommends false",
                    f"--include={','.join(wanted)}",
                    "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-exclude=/usr/share/locale/*",
                    images.DEBIAN_SUITE,
                    str(partial),
                    *sources.mirror_args(sources_dir),
                ],
                f"mmdebstrap of the {name} rootfs ({sources.description})",
                timeout=1800,
            )
        finally:
            shutil.rmtree(sources_dir, ignore_errors=True)
        partial.rename(target)
        progress(
            f"{name} rootfs ready in {time.monotonic() - started:.0f}s "
            f"({target.stat().st_size // 2**20} MiB): {target}"
        )
    return target


# --- the images kubeadm expects ----------------------------------------------------------------


@dataclass(frozen=True)
class NodeBinaries:
    """Every binary that goes into the node image or one of its images."""

    kubelet: Path
    kubeadm: Path
    kubectl: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kube_proxy: Path
    etcd: Path
    coredns: Path
    pause: Path


def tools_set(version: str) -> ComponentSet:
    """kubeadm and kubectl, from the same wrapper module as the kubelet."""
    return ComponentSet(
        f"kubernetes-tools-v{version}",
        f"node-v{version}",
        tuple(
            GoTool(name, f"k8s.io/kubernetes/cmd/{name}", "selinux,notest", _ldflags(version))
            for name in ("kubeadm", "kubectl")
        ),
    )


def node_binaries(version: str, progress: Progress = stderr_progress) -> NodeBinaries:
    """Find or build (into the shared cache, under file locks) everything the node image holds."""
    version = normalize_version(version)
    control_plane = find_binaries(version, progress=progress)
    sets = _node_sets(version)
    node = build_component_set(sets["kubernetes-node"], progress=progress)
    tools = build_component_set(tools_set(version), progress=progress)
    coredns = build_component_set(sets["coredns"], progress=progress)
    pause = build_component_set(sets["pause"], progress=progress)
    return NodeBinaries(
        kubelet=node / "kubelet",
        kubeadm=tools / "kubeadm",
        kubectl=tools / "kubectl",
        kube_apiserver=control_plane.kube_apiserver,
        kube_controller_manager=control_plane.kube_controller_manager,
        kube_scheduler=node / "kube-scheduler",
        kube_proxy=node / "kube-proxy",
        etcd=control_plane.etcd,
        coredns=coredns / "coredns",
        pause=pause / "pause",
    )


def kubeadm_images(kubeadm: Path, version: str) -> dict[str, str]:
    """``{component: image}`` as ``kubeadm config images list`` names them for ``version``."""
    out = _run(
        [str(kubeadm), "config", "images", "list", f"--kubernetes-version=v{normalize_version(version)}"],
        "kubeadm config images list",
        timeout=120,
    )
    found: dict[str, str] = {}
    for line in out.split():
        repository = line.rsplit(":", 1)[0]
        found[repository.rsplit("/", 1)[-1]] = line
    missing = {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "etcd",
        "coredns",
        "pause",
    } - set(found)
    if missing:
        raise BuildError(f"`kubeadm config images list` did not name {sorted(missing)}:\n{out}")
    return found


def proxy_image(binary: Path, name: str, progress: Progress) -> Path:
    """kube-proxy on a Debian rootfs with iptables, nftables and conntrack (it runs them)."""
    rootfs = debian_rootfs("kube-proxy", "essential", PROXY_PACKAGES, progress)
    key = _sha(rootfs.name, _file_sha(binary), name)[:12]
    target = images.images_dir() / f"kind-kube-proxy-{key}.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            layer = Path(tmp) / "layer.tar"
            shutil.copyfile(rootfs, layer)
            with tarfile.open(layer, "a") as tar:
                info = tar.gettarinfo(str(binary), arcname="usr/local/bin/kube-proxy")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with binary.open("rb") as handle:
                    tar.addfile(info, handle)
            images.write_oci_archive(target, [name], layer.read_bytes(), images.ImageConfig())
    return target


@dataclass(frozen=True)
class Archive:
    """An OCI archive to import, and the extra names to tag its image with once imported."""

    path: Path
    imported_as: str
    also: tuple[str, ...] = ()


def image_archives(binaries: NodeBinaries, version: str, progress: Progress) -> list[Archive]:
    """Every image the node must hold: kubeadm's list, the placeholder, the workloads' python."""
    wanted = kubeadm_images(binaries.kubeadm, version)

    def binary(path: Path, component: str) -> Archive:
        name = wanted[component]
        return Archive(images.binary_image(path, [name], f"/usr/local/bin/{component}"), name)

    pause = images.binary_image(binaries.pause, [images.PAUSE_IMAGE, images.PLACEHOLDER_ALIAS], "/pause")
    coredns = images.binary_image(binaries.coredns, [images.COREDNS_IMAGE], "/coredns")
    python = images.python_image(progress=progress)
    return [
        binary(binaries.kube_apiserver, "kube-apiserver"),
        binary(binaries.kube_controller_manager, "kube-controller-manager"),
        binary(binaries.kube_scheduler, "kube-scheduler"),
        binary(binaries.etcd, "etcd"),
        Archive(proxy_image(binaries.kube_proxy, wanted["kube-proxy"], progress), wanted["kube-proxy"]),
        Archive(coredns, images.COREDNS_IMAGE, (wanted["coredns"],)),
        Archive(pause, PLACEHOLDER_IMAGE, (wanted["pause"],)),
        Archive(python, images.PYTHON_IMAGE, (WORKLOAD_IMAGE,)),
    ]


# --- the image ---------------------------------------------------------------------------------


def _overlay(staging: Path, binaries: NodeBinaries, version: str, sandbox_image: str) -> None:
    """The project's files and the node binaries, laid out as they go into the node's rootfs."""

    def put(source: Path | bytes, destination: str, mode: int = 0o644) -> None:
        path = staging / destination.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            path.write_bytes(source)
        else:
            shutil.copyfile(source, path)
        path.chmod(mode)

    for name in ("kubelet", "kubeadm", "kubectl"):
        put(getattr(binaries, name), f"/usr/bin/{name}", 0o755)
    put(FILES / "bin" / "k8s-sa-node-entrypoint", ENTRYPOINT, 0o755)
    put(FILES / "bin" / "k8s-sa-kubelet-cgroups", "/usr/local/bin/k8s-sa-kubelet-cgroups", 0o755)
    put(FILES / "systemd" / "kubelet.service", "/etc/systemd/system/kubelet.service")
    put(FILES / "systemd" / "kubelet.slice", "/etc/systemd/system/kubelet.slice")
    put(FILES / "systemd" / "containerd-k8s-sa.conf", "/etc/systemd/system/containerd.service.d/k8s-sa.conf")
    put(b"[Journal]\nReadKMsg=no\n", "/etc/systemd/journald.conf.d/k8s-sa.conf")
    put(FILES / "etc" / "kubelet-defaults", "/etc/default/kubelet")
    put(FILES / "etc" / "sysctl-k8s-sa.conf", "/etc/sysctl.d/10-k8s-sa.conf")
    containerd = (
        (FILES / "etc" / "containerd-config.toml").read_text().replace("@SANDBOX_IMAGE@", sandbox_image)
    )
    put(containerd.encode(), "/etc/containerd/config.toml")
    put(f"v{normalize_version(version)}\n".encode(), "/kind/version")
    cni = (FILES / "manifests" / "default-cni.yaml").read_text().replace("@TOOLS_IMAGE@", TOOLS_IMAGE)
    put(cni.encode(), "/kind/manifests/default-cni.yaml")
    put(FILES / "manifests" / "default-storage.yaml", "/kind/manifests/default-storage.yaml")
    put(b"built by pytest-k8s-sa (k8s-sa kind-image); not a kind release image\n", "/kind/README.txt")
    systemd = staging / "etc" / "systemd" / "system"
    wants = systemd / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("kubelet.service", "containerd.service"):
        link = wants / unit
        if not link.is_symlink():
            target = (
                "/etc/systemd/system/kubelet.service"
                if unit == "kubelet.service"
                else ("/lib/systemd/system/containerd.service")
            )
            link.symlink_to(target)
    # Nothing to log in on, and no hardware to wait for, inside a container.
    for unit in (
        "getty.target",
        "console-getty.service",
        "systemd-udevd.service",
        "systemd-modules-load.service",
    ):
        mask = systemd / unit
        if not mask.is_symlink():
            mask.symlink_to("/dev/null")
    opt_cni = staging / "opt" / "cni"
    opt_cni.mkdir(parents=True, exist_ok=True)
    if not (opt_cni / "bin").is_symlink():
        (opt_cni / "bin").symlink_to("/usr/lib/cni")


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\0".encode())
        elif path.is_file():
            digest.update(f"F {rel} {path.stat().st_mode:o} {_file_sha(path)}\0".encode())
    return digest.hexdigest()


def image_key(docker: str, tag: str) -> str | None:
    """The build key label of ``tag`` in the engine, or None when there is no such image."""
    proc = subprocess.run(
        [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout.strip() or "null") or {}
    return str(labels.get(IMAGE_KEY_LABEL) or "") or None


def image_present(tag: str) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    proc = subprocess.run([docker, "image", "inspect", tag], capture_output=True, check=False)
    return proc.returncode == 0


def build_node_image(
    version: str,
    *,
    tag: str | None = None,
    force: bool = False,
    progress: Progress = stderr_progress,
) -> str:
    """Build (or find, by content key) the kind node image for ``version``; return its tag."""
    version = normalize_version(version)
    tag = tag or default_image(version)
    docker = docker_cli()
    started = time.monotonic()
    progress(f"kind node image {tag}: collecting its parts (binaries are built once, then cached)")
    binaries = node_binaries(version, progress)
    archives = image_archives(binaries, version, progress)
    sandbox = next(a for a in archives if a.imported_as == PLACEHOLDER_IMAGE).also[0]
    rootfs = debian_rootfs("kind-node", "minbase", NODE_PACKAGES, progress)
    kind_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="node-overlay-", dir=kind_dir()) as tmp:
        staging = Path(tmp) / "root"
        _overlay(staging, binaries, version, sandbox)
        key = _sha(
            "node-image-1",
            rootfs.name,
            _tree_digest(staging),
            *(f"{a.path.name} {a.imported_as} {' '.join(a.also)}" for a in archives),
        )[:16]
        with FileLock(str(kind_dir() / "node-image.lock")):
            if not force and image_key(docker, tag) == key:
                progress(f"kind node image {tag} is up to date (key {key})")
                return tag
            _assemble(docker, tag, key, rootfs, staging, archives, progress)
    progress(f"kind node image {tag} ready in {time.monotonic() - started:.0f}s")
    return tag


def _assemble(
    docker: str, tag: str, key: str, rootfs: Path, staging: Path, archives: list[Archive], progress: Progress
) -> None:
    base = f"k8s-sa/kind-rootfs:{rootfs.stem.rsplit('-', 1)[-1]}"
    if subprocess.run([docker, "image", "inspect", base], capture_output=True, check=False).returncode != 0:
        progress(f"importing the Debian rootfs as {base} ...")
        _run([docker, "import", str(rootfs), base], "docker import of the node rootfs")
    container = f"k8s-sa-kind-image-build-{os.getpid()}"
    subprocess.run([docker, "rm", "-f", container], capture_output=True, check=False)
    step = time.monotonic()
    progress("assembling the node: project files and binaries, then every image into its containerd ...")
    _run(
        [
            docker,
            "create",
            "--privileged",
            "--name",
            container,
            # systemd stops on SIGRTMIN+3; `docker commit` keeps the container's stop signal.
            "--stop-signal=SIGRTMIN+3",
            "--entrypoint",
            "/usr/bin/containerd",
            base,
        ],
        "docker create of the build container",
    )
    try:
        _run([docker, "cp", f"{staging}/.", f"{container}:/"], "copying the project's files into the node")
        _run([docker, "start", container], "starting containerd in the build container")
        _wait_containerd(docker, container)
        ctr = [docker, "exec", container, "ctr", "--namespace=k8s.io"]
        for archive in archives:
            inside = f"/k8s-sa-import-{archive.path.name}"
            _run([docker, "cp", str(archive.path), f"{container}:{inside}"], f"copying {archive.path.name}")
            _run(
                [
                    docker,
                    "exec",
                    container,
                    "ctr",
                    "--namespace=k8s.io",
                    "images",
                    "import",
                    "--no-unpack",
                    "--all-platforms",
                    inside,
                ],
                f"importing {archive.imported_as}",
            )
            for name in archive.also:
                _run(
                    [*ctr, "images", "tag", "--force", archive.imported_as, name],
                    f"tagging {archive.imported_as} as {name}",
                )
            _run([docker, "exec", container, "rm", "-f", inside], "removing the imported archive")
            progress(
                f"  imported {archive.imported_as}"
                + (f" (also {', '.join(archive.also)})" if archive.also else "")
            )
        listed = _run(
            [docker, "exec", container, "ctr", "--namespace=k8s.io", "images", "list", "--quiet"],
            "listing the node's images",
        )
        missing = [n for a in archives for n in (a.imported_as, *a.also) if n not in listed.split()]
        if missing:
            raise BuildError(f"the node's containerd does not list {missing} after the import:\n{listed}")
        _run([docker, "stop", "--time=30", container], "stopping the build container")
        _run(
            [
                docker,
                "commit",
                "--change",
                f'ENTRYPOINT ["{ENTRYPOINT}", "/sbin/init"]',
                "--change",
                "CMD []",
                "--change",
                "ENV container=docker",
                "--change",
                f"LABEL {IMAGE_KEY_LABEL}={key}",
                container,
                tag,
            ],
            "docker commit of the node image",
        )
    finally:
        subprocess.run([docker, "rm", "-f", container], capture_output=True, check=False)
    progress(f"node assembled in {time.monotonic() - step:.0f}s")


def _wait_containerd(docker: str, container: str, timeout: float = 60.0) -> None:
    from ..base.waiting import WaitTimeout, wait_until

    def up() -> bool:
        argv = [docker, "exec", container, "ctr", "--namespace=k8s.io", "version"]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    try:
        wait_until(up, timeout, "containerd in the build container did not answer")
    except WaitTimeout as exc:
        logs = subprocess.run([docker, "logs", "--tail", "30", container], capture_output=True, text=True)
        raise BuildError(f"{exc}\n{logs.stdout}{logs.stderr}") from None
