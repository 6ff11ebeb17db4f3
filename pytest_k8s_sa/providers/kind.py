"""A kind cluster through pytest-kind (``pytest-kind-ng``), on a workstation's Docker or without a registry.

What :meth:`KindProvider.create` does before it hands over to pytest-kind's ``KindCluster.create``:

1. a Docker engine: the user's when it answers; otherwise (root, Debian's ``docker.io``
   installed) the project's dockerd (:mod:`pytest_k8s_sa.kind.docker`), stopped at the end;
2. ``kind``: ``--kind-bin``, else on PATH, else built from its Go module (pytest-kind would try to
   download a release, which fails on machines without internet access);
3. the node image: ``kindest/node:v<version>`` unless ``--kind-image`` names another. When the
   default image is not in the engine it is built here (:mod:`pytest_k8s_sa.kind.nodeimage`);
4. the project's cluster configuration (pod and service subnets, :mod:`pytest_k8s_sa.kind.config`),
   passed as ``create(config_file=...)``;
5. a cluster of the same name left by a killed run is deleted first, unless ``--keep-cluster``
   asks to reuse it.

Once up, the node's service-account signing key (``/etc/kubernetes/pki/sa.key``, the standard
kubeadm layout) is copied out so tokens can be minted, the kubelet can be restarted through
``docker exec <node> systemctl restart kubelet``, and the key set can be rotated by rewriting the
kube-apiserver static pod (:mod:`.kind_keys`).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ..base.errors import ClusterUnreachableError, K8sSAError
from ..components.binaries import DEFAULT_K8S_VERSION, stderr_progress
from ..components.controlplane import REVIEW_LOG
from ..components.pki import CertificateAuthority
from .base import Capabilities, ClusterInfo
from .kind_keys import KindNodeKeys
from .kubeconfig import probe


class KindProvider:
    name = "kind"

    def __init__(
        self,
        cluster_name: str,
        *,
        kubeconfig: Path | None = None,
        image: str | None = None,
        kind_bin: str | None = None,
        keep: bool = False,
        version: str | None = None,
        config_file: Path | None = None,
        pod_subnet: str | None = None,
        service_subnet: str | None = None,
        owner_pid: int | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.cluster_name = cluster_name
        self.kubeconfig = kubeconfig
        self.version = version or DEFAULT_K8S_VERSION
        self.image = image
        self.kind_bin = kind_bin
        self.keep = keep
        self.config_file = config_file
        self.pod_subnet = pod_subnet
        self.service_subnet = service_subnet
        self.owner_pid = owner_pid or os.getpid()
        self._cluster: object | None = None
        self._owns_engine = False
        self._work_dir = work_dir
        self._tmp: Path | None = None
        """The signing key's copy and the kind configuration: made by :meth:`create`, removed by
        :meth:`destroy` (or at once when ``create`` fails)."""
        """Outlives the run when ``work_dir`` is pytest's base temp folder: the node logs stay readable."""
        self._exported = False

    @property
    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"k8s-sa-kind-{self.cluster_name}-"))
        return self._tmp

    @property
    def _logs_dir(self) -> Path:
        return (self._work_dir or self._workdir) / f"kind-{self.cluster_name}-logs"

    @property
    def node_container(self) -> str:
        return f"{self.cluster_name}-control-plane"

    def create(self) -> ClusterInfo:
        from ..kind import config, docker, nodeimage, tool

        try:
            self._owns_engine = docker.ensure(self.owner_pid, progress=stderr_progress)
            kind_bin = tool.find_kind(self.kind_bin, progress=stderr_progress)
            self.kind_bin = str(kind_bin)
            image = self.image or nodeimage.default_image(self.version)
            if image == nodeimage.default_image(self.version):
                # Built here when missing; on a workstation with the image pulled, only inspected.
                if not nodeimage.image_present(image):
                    stderr_progress(f"{image} is not in the Docker engine; building it from local components")
                    nodeimage.build_node_image(self.version, progress=stderr_progress)
            elif not nodeimage.image_present(image):
                raise ClusterUnreachableError(
                    f"the kind node image {image} is not in the Docker engine: `docker pull` it, or drop "
                    f"--kind-image to use {nodeimage.default_image(self.version)} (built locally if needed)."
                )
            # The TokenReview audit log only in a cluster this run creates from the project's
            # configuration: a kept cluster may have been made by a run whose folder is gone.
            audit_dir = None if self.config_file or self.keep else self._workdir / "audit"
            config_file = self.config_file or config.write_cluster_config(
                self._workdir / "kind-config.yaml",
                self.pod_subnet or config.POD_SUBNET,
                self.service_subnet or config.SERVICE_SUBNET,
                audit_dir,
            )
            self._delete_leftover()
        except K8sSAError:
            self._stop_engine()
            self._remove_tmp()
            raise
        from pytest_kind import KindCluster

        cluster = KindCluster(self.cluster_name, self.kubeconfig, image=image, kind_path=kind_bin)
        self._cluster = cluster
        try:
            cluster.create(config_file=config_file)
        except (subprocess.CalledProcessError, OSError) as exc:
            self.destroy()
            raise ClusterUnreachableError(
                f"kind could not create cluster {self.cluster_name!r}: {exc} "
                "(run with -s to see kind's output)"
            ) from None
        kubeconfig = Path(cluster.kubeconfig_path)
        try:
            _version, issuer = probe(kubeconfig)
            signing_key = self._copy_signing_key()
            key_control = None
            if signing_key is not None:
                node_keys = KindNodeKeys(
                    self._docker, self.node_container, kubeconfig, self._workdir / "keys"
                )
                key_control = node_keys.key_control(signing_key)
                signing_key = node_keys.signing_key  # the key that signs now, rotated or not
            cluster_ca = self._cluster_ca()
            self._logs_dir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.destroy()  # the caller only destroys what was created successfully
            raise
        return ClusterInfo(
            provider=self.name,
            kubeconfig=kubeconfig,
            issuer=issuer,
            api_audiences=self._api_audiences(issuer),
            signing_key=signing_key,
            capabilities=Capabilities(
                holds_signing_key=signing_key is not None,
                runs_pods=True,
                # The run created the cluster and deletes it whole, unless it is kept.
                owns_cluster=not self.keep,
            ),
            log_paths=self.log_paths,
            node_control=self,
            refresh_logs=self.refresh_logs,
            cluster_ca=cluster_ca,
            review_log=None if audit_dir is None else audit_dir / REVIEW_LOG,
            key_control=key_control,
            key_control_missing=(
                "the kind node's service-account signing key could not be copied out "
                "(/etc/kubernetes/pki/sa.key), so its key set cannot be rotated here"
            ),
        )

    # --- the node ------------------------------------------------------------------------------

    def _docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        docker = shutil.which("docker") or "docker"
        proc = subprocess.run([docker, *args], capture_output=True, text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterUnreachableError(f"`docker {' '.join(args)}` failed: {proc.stderr.strip()[-1000:]}")
        return proc.stdout

    def _copy_signing_key(self) -> Path | None:
        """The node's service-account signing key, copied out (mode 0600) so tokens can be minted."""
        target = self._workdir / "sa.key"
        try:
            self._docker("cp", f"{self.node_container}:/etc/kubernetes/pki/sa.key", str(target))
        except ClusterUnreachableError as exc:
            stderr_progress(f"no signing key from the node ({exc}); minted-token checks will skip")
            return None
        target.chmod(0o600)
        return target

    def _cluster_ca(self) -> CertificateAuthority | None:
        """kubeadm's cluster CA (what pods trust for the apiserver), for the pod-mode API cut's answers
        over TLS; None (those outages are then not played) when it cannot be read."""
        try:
            for name in ("ca.crt", "ca.key"):
                self._docker(
                    "cp", f"{self.node_container}:/etc/kubernetes/pki/{name}", str(self._workdir / name)
                )
            (self._workdir / "ca.key").chmod(0o600)
            return CertificateAuthority.from_pem(
                (self._workdir / "ca.crt").read_bytes(), (self._workdir / "ca.key").read_bytes()
            )
        except (ClusterUnreachableError, OSError, ValueError) as exc:
            stderr_progress(
                f"no cluster CA from the node ({exc}); the API cut's answers over TLS will not be played"
            )
            return None

    def _api_audiences(self, issuer: str | None) -> list[str] | None:
        """``--api-audiences`` of the node's kube-apiserver; kubeadm leaves it unset (= the issuer)."""
        manifest = self._docker(
            "exec", self.node_container, "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml", check=False
        )
        try:
            pod = yaml.safe_load(manifest) or {}
            command = pod["spec"]["containers"][0]["command"]
        except (yaml.YAMLError, KeyError, IndexError, TypeError):
            command = []
        for arg in command:
            if str(arg).startswith("--api-audiences="):
                return str(arg).split("=", 1)[1].split(",")
        return [issuer] if issuer else None

    def restart_kubelet(self) -> None:
        """``systemctl restart kubelet`` in the node: its token cache is in memory, so it requests
        every projected token again and replaces the files in the running pods."""
        self._docker("exec", self.node_container, "systemctl", "restart", "kubelet")

    def read_projected_file(self, pod_uid: str, volume: str, path: str) -> str:
        """``cat`` in the node container (kind's kubelet keeps pods under ``/var/lib/kubelet``)."""
        from ..components.node.node import PROJECTED_PLUGIN_DIR

        file = posixpath.join("/var/lib/kubelet/pods", pod_uid, "volumes", PROJECTED_PLUGIN_DIR, volume, path)
        return self._docker("exec", self.node_container, "cat", file)

    def load_image_archive(self, path: Path) -> list[str]:
        """Import an OCI or docker-archive tarball into the node's containerd (``k8s.io`` namespace)."""
        from ..components.node.containerd import archive_image_names, normalize_reference

        wanted = {normalize_reference(name) for name in archive_image_names(Path(path))}
        docker = shutil.which("docker") or "docker"
        ctr = [docker, "exec", "-i", self.node_container, "ctr", "--namespace=k8s.io", "images"]
        with Path(path).open("rb") as archive:
            proc = subprocess.run(
                [*ctr, "import", "--all-platforms", "-"], stdin=archive, capture_output=True, check=False
            )
        if proc.returncode != 0:
            raise ClusterUnreachableError(
                f"importing {path} into the kind node failed: {proc.stderr.decode(errors='replace')[-1000:]}"
            )
        held = set(
            self._docker(
                "exec", self.node_container, "ctr", "--namespace=k8s.io", "images", "list", "-q"
            ).split()
        )
        found = sorted(wanted & held)
        if not found:
            raise ClusterUnreachableError(
                f"{path}: imported, but none of {sorted(wanted)} is listed in the node"
            )
        return found

    def refresh_logs(self) -> None:
        """Copy the node's kubelet and containerd journals and the control-plane logs into ``log_paths``.

        The first time (the first failed test) ``kind export logs`` also writes everything kind
        collects from the node next to them, in ``kind-export/``.
        """
        if not self._exported:
            self._exported = True
            self.export_logs(self._logs_dir / "kind-export")
        for name, path in self.log_paths.items():
            unit = {"kubelet": "kubelet", "containerd": "containerd"}.get(name)
            if unit:
                argv = ["exec", self.node_container, "journalctl", "--no-pager", "-n", "400", "-u", unit]
            else:
                argv = [
                    "exec",
                    self.node_container,
                    "sh",
                    "-c",
                    f"tail -n 400 /var/log/containers/{name}-*.log",
                ]
            path.write_text(self._docker(*argv, check=False, timeout=30))

    @property
    def log_paths(self) -> dict[str, Path]:
        names = ("kubelet", "containerd", "kube-apiserver", "kube-controller-manager")
        return {name: self._logs_dir / f"{name}.log" for name in names}

    # --- lifecycle -----------------------------------------------------------------------------

    def _clusters(self) -> list[str]:
        if not self.kind_bin:
            return []
        proc = subprocess.run(
            [self.kind_bin, "get", "clusters"], capture_output=True, text=True, check=False, timeout=60
        )
        return proc.stdout.split()

    def _delete_leftover(self) -> None:
        if self.cluster_name not in self._clusters():
            return
        if self.keep:
            stderr_progress(f"reusing the existing kind cluster {self.cluster_name!r} (--keep-cluster)")
            return
        stderr_progress(f"deleting the kind cluster {self.cluster_name!r} an earlier run left behind")
        assert self.kind_bin is not None
        subprocess.run(
            [self.kind_bin, "delete", "cluster", f"--name={self.cluster_name}"],
            capture_output=True,
            check=False,
            timeout=300,
        )

    def export_logs(self, destination: Path) -> list[Path]:
        if not self.kind_bin:
            return []
        destination.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [self.kind_bin, "export", "logs", str(destination), f"--name={self.cluster_name}"],
            check=False,
            capture_output=True,
        )
        return sorted(p for p in destination.rglob("*") if p.is_file())

    def _stop_engine(self) -> None:
        if self._owns_engine:
            from ..kind import docker

            docker.down()
            self._owns_engine = False

    def destroy(self) -> None:
        try:
            if self._cluster is not None and not self.keep:
                self._cluster.delete()  # type: ignore[attr-defined]
            self._cluster = None
        finally:
            if not self.keep:
                self._stop_engine()
            self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
