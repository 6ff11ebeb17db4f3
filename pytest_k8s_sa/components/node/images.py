"""Container images built on this machine and imported into containerd: no registry involved.

* :func:`write_oci_archive` writes a one-layer OCI image layout as a tar archive, the format
  ``ctr images import`` reads, with ``io.containerd.image.name`` annotations naming the image.
* pause: the project's own Go program (``gobuild/pause``), alone in the image.
* CoreDNS: the binary built from ``github.com/coredns/coredns`` v1.15.0, alone in the image.
* python: Debian bookworm's ``python3`` (3.11, with ``python-is-python3`` so ``python`` works as in
  the official image) by ``mmdebstrap --variant=essential``, about 45 s once, from this machine's own
  apt sources or the mirror named by ``--k8s-apt-mirror`` (:mod:`.aptsources`); the archive is cached
  under ``~/.cache/pytest-k8s-sa/images``, keyed by those sources.

The pause image is imported under a second name, :data:`PLACEHOLDER_ALIAS`
(:data:`PLACEHOLDER_IMAGE`, which ``resources`` uses), so the placeholder pods the fixtures create
actually run here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ...base.paths import cache_root
from . import aptsources
from .host import CommandError, NodeError, Runner

PAUSE_IMAGE = "localhost/k8s-sa/pause:local"
PLACEHOLDER_IMAGE = "registry.k8s.io/pause:3.10"
"""Pods created only so tokens can be bound to them (:mod:`pytest_k8s_sa.cluster.resources` uses it);
on kind the image is already on the node. Defined here, with the images, so nothing below the
cluster layer imports it from above."""
PLACEHOLDER_ALIAS = PLACEHOLDER_IMAGE
COREDNS_IMAGE = "localhost/k8s-sa/coredns:v1.15.0"
PYTHON_IMAGE = "localhost/k8s-sa/python:3.11-bookworm"
"""The workloads' image on the local node (Debian's python3; overridable in deploy_manifests)."""
DEBIAN_SUITE = "bookworm"
_EPOCH = "1970-01-01T00:00:00Z"
_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = (_DEFAULT_PATH,)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _blob(tar: tarfile.TarFile, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    _add_bytes(tar, f"blobs/sha256/{digest}", data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def layer_from_files(files: dict[str, Path]) -> bytes:
    """An uncompressed layer tar holding ``files`` (path in the image -> file here), mode kept."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for arcname, source in sorted(files.items()):
            info = layer.gettarinfo(str(source), arcname=arcname.lstrip("/"))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with source.open("rb") as handle:
                layer.addfile(info, handle)
    return raw.getvalue()


def write_oci_archive(out: Path, names: Sequence[str], layer: bytes, config: ImageConfig) -> Path:
    """Write an OCI image layout tar with one gzip layer; every name in ``names`` refers to it."""
    compressed = gzip.compress(layer, compresslevel=1, mtime=0)
    image_config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": _EPOCH,
        "config": {"Env": list(config.env)},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": _EPOCH, "created_by": "pytest-k8s-sa node.images"}],
    }
    if config.entrypoint:
        image_config["config"]["Entrypoint"] = list(config.entrypoint)  # type: ignore[index]
    if config.cmd:
        image_config["config"]["Cmd"] = list(config.cmd)  # type: ignore[index]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        config_desc = _blob(
            tar, json.dumps(image_config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json"
        )
        layer_desc = _blob(tar, compressed, "application/vnd.oci.image.layer.v1.tar+gzip")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
        manifest_desc = _blob(
            tar, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json"
        )
        entries = [
            {
                **manifest_desc,
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
                "platform": {"architecture": "amd64", "os": "linux"},
            }
            for name in names
        ]
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
        _add_bytes(tar, "index.json", json.dumps(index).encode())
    partial.rename(out)
    return out


def images_dir() -> Path:
    return cache_root() / "images"


def _cached(name: str, key: str, build: Callable[[Path], object]) -> Path:
    """``images/<name>-<key>.tar``, built once under a lock."""
    directory = images_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}-{key}.tar"
    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            build(target)
    return target


def _file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def binary_image(binary: Path, names: Sequence[str], entrypoint: str) -> Path:
    """An image holding one static binary at ``entrypoint`` (pause, coredns)."""
    stem = Path(entrypoint).name
    config = ImageConfig(entrypoint=(entrypoint,))
    return _cached(
        stem,
        _file_key(binary),
        lambda out: write_oci_archive(out, names, layer_from_files({entrypoint: binary}), config),
    )


def python_image(
    runner: Runner | None = None, progress: Callable[[str], None] = print, apt_mirror: str | None = None
) -> Path:
    """Debian bookworm with python3, as an OCI archive (mmdebstrap, once per apt sources; then cached).

    ``apt_mirror`` (else ``$K8S_SA_APT_MIRROR``, else this machine's apt sources): see :mod:`.aptsources`.
    """
    run = runner or Runner()
    if shutil.which("mmdebstrap") is None:
        raise NodeError("mmdebstrap is needed to build the python image: `apt-get install -y mmdebstrap`")
    sources = aptsources.resolve(DEBIAN_SUITE, apt_mirror)

    def build(out: Path) -> None:
        progress(
            f"building the python image from Debian {DEBIAN_SUITE} ({sources.description}) with mmdebstrap "
            "(once, ~1 min) ..."
        )
        with tempfile.TemporaryDirectory(prefix="k8s-sa-python-", dir=out.parent) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            try:
                run(
                    "mmdebstrap",
                    "--quiet",
                    "--variant=essential",
                    "--include=python3,python-is-python3,ca-certificates",
                    "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-exclude=/usr/share/locale/*",
                    DEBIAN_SUITE,
                    str(rootfs),
                    *sources.mirror_args(Path(tmp)),
                    timeout=900,
                )
            except CommandError as exc:
                raise NodeError(
                    f"building the python image from {sources.description} failed: {exc}\n"
                    "To use another mirror: --k8s-apt-mirror URI (or ini k8s_sa_apt_mirror, "
                    f"${aptsources.APT_MIRROR_ENV})."
                ) from exc
            config = ImageConfig(cmd=("python3",), env=(_DEFAULT_PATH, "LANG=C.UTF-8"))
            write_oci_archive(out, [PYTHON_IMAGE], rootfs.read_bytes(), config)
        progress(f"python image ready: {out} ({os.path.getsize(out) // 2**20} MiB)")

    return _cached("python", f"{DEBIAN_SUITE}-{sources.key}", build)
