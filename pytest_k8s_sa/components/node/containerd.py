"""containerd v2 for the node: configuration, the process, and ``ctr`` for images and cleanup.

Every path of containerd's own (root, state, sockets, runc root, pod network-namespace mounts)
lives under the node's work folder; what containerd hard-codes elsewhere (shim sockets in
``/run/containerd/s``) is removed by the node's teardown. Plugins the node does not need and that
would touch the host (NRI's socket, ``/opt/containerd``, tracing, btrfs/zfs/devmapper) are off.

Settings that matter here:

* ``restrict_oom_score_adj = true``: without CAP_SYS_RESOURCE (this VM) the pause container's
  oom_score_adj of -998 fails every sandbox ("can't get final child's PID from pipe: EOF").
* ``pinned_images.sandbox``: the locally built pause image; it is never garbage-collected.
* ``registry.config_path``: a ``_default/hosts.toml`` that sends every registry host to a closed
  loopback port, so a pull of anything not imported fails locally, at once.
* ``SystemdCgroup = false``: cgroupfs (PID 1 is not systemd); the kubelet learns it through CRI.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ...base.process import Process
from .host import CNI_BIN_DIR, NodeError, Runner
from .images import PAUSE_IMAGE
from .network import nsenter

NAMESPACE = "k8s.io"
"""containerd namespace of the CRI plugin (what the kubelet's pods use)."""

_DISABLED_PLUGINS = (
    "io.containerd.nri.v1.nri",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.erofs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


@dataclass
class Containerd:
    """One containerd under ``workdir``, run inside the node's network namespace."""

    binary: Path
    ctr_binary: Path
    workdir: Path
    cni_conf_dir: Path

    @property
    def socket(self) -> Path:
        return self.workdir / "run" / "containerd.sock"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.toml"

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    def write_config(self) -> Path:
        certs = self.workdir / "certs.d" / "_default"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "hosts.toml").write_text(
            "# Every registry resolves to a closed loopback port: no pull can leave this machine.\n"
            'server = "http://127.0.0.1:9"\n'
        )
        disabled = ", ".join(f'"{p}"' for p in _DISABLED_PLUGINS)
        runtime = "plugins.'io.containerd.cri.v1.runtime'"
        images = "plugins.'io.containerd.cri.v1.images'"
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"""version = 3
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = "{self.workdir / "run" / "debug.sock"}"

[{images}]
  snapshotter = "overlayfs"
  [{images}.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [{images}.registry]
    config_path = "{self.workdir / "certs.d"}"

[{runtime}]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{runtime}.containerd]
    default_runtime_name = "runc"
    [{runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{runtime}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{self.workdir / "runc"}"
  [{runtime}.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{self.cni_conf_dir}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
        )
        return self.config_path

    def process(self, log_path: Path, *, owner_pid: int | None, die_with_parent: bool) -> Process:
        # The v2 shim must come first on PATH (Debian's /usr/bin one belongs to containerd 1.6).
        env = {"PATH": f"{self.binary.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        return Process(
            "containerd",
            nsenter([str(self.binary), "--config", str(self.config_path)]),
            log_path,
            env=env,
            health=lambda: self.ctr_ok("version"),
            owner_pid=owner_pid,
            die_with_parent=die_with_parent,
        )

    def ctr(self, *args: str, runner: Runner | None = None, timeout: float = 120.0) -> str:
        run = runner or Runner()
        return run(
            str(self.ctr_binary),
            "--address",
            str(self.socket),
            "--namespace",
            NAMESPACE,
            *args,
            timeout=timeout,
        )

    def ctr_ok(self, *args: str) -> bool:
        return Runner().ok(
            str(self.ctr_binary), "--address", str(self.socket), "--namespace", NAMESPACE, *args
        )

    def import_image(self, archive: Path) -> list[str]:
        """Import an OCI or docker-archive tarball; return the references the runtime now holds from it."""
        wanted = {normalize_reference(name) for name in archive_image_names(archive)}
        self.ctr("images", "import", str(archive))
        held = set(self.ctr("images", "list", "--quiet", timeout=30).split())
        found = sorted(wanted & held)
        if not found:
            raise NodeError(
                f"{archive}: imported, but none of its images ({', '.join(sorted(wanted))}) is listed"
            )
        return found

    def remove_all_containers(self) -> None:
        """Kill every task, delete tasks and containers (best effort; containerd must be up)."""
        for task in self.ctr("tasks", "list", "--quiet", timeout=30).split():
            self.ctr_ok("tasks", "kill", "--signal", "SIGKILL", task)
        for task in self.ctr("tasks", "list", "--quiet", timeout=30).split():
            self.ctr_ok("tasks", "delete", "--force", task)
        for container in self.ctr("containers", "list", "--quiet", timeout=30).split():
            self.ctr_ok("containers", "delete", container)


def archive_image_names(archive: Path) -> list[str]:
    """The image names an OCI (``index.json``) or docker-archive (``manifest.json``) tarball carries.

    Raises :class:`NodeError` when ``archive`` is not such a tarball or names no image, before
    anything is imported.
    """
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
            names: list[str] = []
            if "manifest.json" in members:
                manifest = json.load(tar.extractfile(members["manifest.json"]) or io.BytesIO(b"[]"))
                names = [tag for entry in manifest for tag in entry.get("RepoTags") or []]
            elif "index.json" in members:
                index = json.load(tar.extractfile(members["index.json"]) or io.BytesIO(b"{}"))
                for entry in index.get("manifests", []):
                    annotations = entry.get("annotations") or {}
                    name = annotations.get("io.containerd.image.name") or annotations.get(
                        "org.opencontainers.image.ref.name"
                    )
                    if name:
                        names.append(name)
            else:
                raise NodeError(
                    f"{archive} is neither an OCI image archive (index.json) nor a docker archive "
                    "(manifest.json): save the image with `docker save` or as an OCI archive"
                )
    except (OSError, tarfile.TarError, ValueError, AttributeError, TypeError) as exc:
        raise NodeError(f"{archive} is not a readable image archive: {exc}") from None
    if not names:
        raise NodeError(
            f"{archive} names no image (no RepoTags, no image name annotation): tag it before saving it"
        )
    return names


def normalize_reference(name: str) -> str:
    """``python:3.11`` -> ``docker.io/library/python:3.11``, as containerd names imported images."""
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if "@" not in name and ":" not in name.rpartition("/")[2]:
        name += ":latest"
    return name
