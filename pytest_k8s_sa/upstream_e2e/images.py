"""The two images the SIG Auth specs run, built on this machine for clusters with no registry.

Upstream's images are pulled from a container registry; where there is none (``local-node``,
offline kind) the specs get local builds under local names, chosen through upstream's own switch
``$KUBE_TEST_REPO_LIST`` (a YAML file that renames the registries in
``test/utils/image/manifest.go``), so the spec code is unchanged:

* agnhost: the ``agnhost`` binary built from ``k8s.io/kubernetes/test/images/agnhost`` of the
  cluster's version, on Debian bookworm (``mmdebstrap --variant=essential`` with curl: the
  NodeAuthenticator specs ``curl`` the kubelet from inside the pod; upstream's is Alpine with curl).
  Entrypoint ``/agnhost``, command ``pause``, as upstream's Dockerfile.
* busybox: Debian's ``busybox-static`` (``mmdebstrap --variant=extract``), one symlink per applet
  in ``/bin``.

The tags are upstream's (read from the e2e binary, ``--k8s-sa-list-images``), so they follow the
version. Both archives are cached under ``~/.cache/pytest-k8s-sa/images``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..components.node import aptsources
from ..components.node.host import CommandError, NodeError, Runner
from ..components.node.images import DEBIAN_SUITE, ImageConfig, _cached, _file_key, write_oci_archive

LOCAL_REPO = "localhost/k8s-sa/e2e-test-images"
"""Where ``$KUBE_TEST_REPO_LIST`` points upstream's e2e image registry on clusters without one."""

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def write_repo_list(path: Path) -> Path:
    """The ``$KUBE_TEST_REPO_LIST`` file that renames upstream's e2e image registry to the local one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"promoterE2eRegistry: {LOCAL_REPO}\n")
    return path


def list_images(e2e_test: Path, repo_list: Path | None) -> dict[str, str]:
    """``{"agnhost": name, "busybox": name}`` as the e2e binary will use them."""
    env = {k: v for k, v in os.environ.items() if k != "KUBE_TEST_REPO_LIST"}
    if repo_list is not None:
        env["KUBE_TEST_REPO_LIST"] = str(repo_list)
    proc = subprocess.run(
        [str(e2e_test), "--k8s-sa-list-images"], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise NodeError(f"{e2e_test} --k8s-sa-list-images failed: {proc.stderr.strip()[-500:]}")
    images: dict[str, str] = json.loads(proc.stdout)
    return images


def _mmdebstrap(runner: Runner, out: Path, *args: str) -> None:
    """mmdebstrap from this machine's apt sources or ``$K8S_SA_APT_MIRROR`` (:mod:`..node.aptsources`)."""
    mirrors = aptsources.resolve(DEBIAN_SUITE).mirror_args(out.parent)
    try:
        runner("mmdebstrap", "--quiet", *args, DEBIAN_SUITE, str(out), *mirrors, timeout=900)
    except CommandError as exc:
        raise NodeError(f"building an e2e image with mmdebstrap failed: {exc}") from exc
    except FileNotFoundError:
        raise NodeError(
            "mmdebstrap is needed to build the e2e images: `apt-get install -y mmdebstrap`"
        ) from None


def agnhost_image(
    agnhost: Path, name: str, *, runner: Runner | None = None, progress: Callable[[str], None] = print
) -> Path:
    """agnhost on Debian with curl, as an OCI archive naming the image ``name``."""
    run = runner or Runner()

    def build(out: Path) -> None:
        progress(f"building {name} (Debian {DEBIAN_SUITE} + curl + agnhost, once, ~1 min) ...")
        with tempfile.TemporaryDirectory(prefix="k8s-sa-agnhost-", dir=out.parent) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            _mmdebstrap(
                run,
                rootfs,
                "--variant=essential",
                "--include=curl,ca-certificates",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
            )
            with tarfile.open(rootfs, "a") as layer:
                info = layer.gettarinfo(str(agnhost), arcname="agnhost")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with agnhost.open("rb") as handle:
                    layer.addfile(info, handle)
            config = ImageConfig(entrypoint=("/agnhost",), cmd=("pause",), env=(_PATH,))
            write_oci_archive(out, [name], rootfs.read_bytes(), config)

    sources = aptsources.resolve(DEBIAN_SUITE).key  # another mirror, another image
    return _cached("agnhost", f"{_file_key(agnhost)}-{sources}-{_safe(name)}", build)


def busybox_image(
    name: str, *, runner: Runner | None = None, progress: Callable[[str], None] = print
) -> Path:
    """Debian's busybox-static with its applets linked in ``/bin``, as an OCI archive."""
    run = runner or Runner()

    def build(out: Path) -> None:
        progress(f"building {name} (Debian busybox-static, once) ...")
        with tempfile.TemporaryDirectory(prefix="k8s-sa-busybox-", dir=out.parent) as tmp:
            extracted = Path(tmp) / "extract.tar"
            _mmdebstrap(run, extracted, "--variant=extract", "--include=busybox-static")
            with tarfile.open(extracted) as source:
                members = [m for m in source.getmembers() if m.isfile() and m.name.endswith("bin/busybox")]
                handle = source.extractfile(members[0]) if members else None
                if handle is None:
                    raise NodeError("busybox-static from Debian has no bin/busybox (package layout changed?)")
                binary = handle.read()
            exe = Path(tmp) / "busybox"
            exe.write_bytes(binary)
            exe.chmod(0o755)
            applets = run(str(exe), "--list", timeout=30).split()
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for directory in ("bin", "tmp", "etc"):
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
                    tar.addfile(info)
                info = tarfile.TarInfo("bin/busybox")
                info.size, info.mode = len(binary), 0o755
                tar.addfile(info, io.BytesIO(binary))
                for applet in sorted(set(applets) - {"busybox"}):
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
                for file, text in _ETC.items():
                    data = text.encode()
                    info = tarfile.TarInfo(file)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
            config = ImageConfig(cmd=("sh",), env=(_PATH,))
            write_oci_archive(out, [name], layer.getvalue(), config)

    sources = aptsources.resolve(DEBIAN_SUITE).key  # another mirror, another image
    return _cached("busybox", f"{DEBIAN_SUITE}-1-{sources}-{_safe(name)}", build)


_ETC: Mapping[str, str] = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name.rsplit("/", 1)[-1])
