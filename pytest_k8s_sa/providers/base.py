"""One interface for every way of getting a cluster (after kubernetes-sigs/e2e-framework).

A provider creates (or attaches to) a cluster, hands out its kubeconfig, exports component logs
and destroys what it created, and nothing else: a provider that attached to an existing cluster
destroys nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the plugin's entry point imports this module before the kubernetes client
    import kubernetes

    from ..components.pki import CertificateAuthority


@dataclass(frozen=True)
class Capabilities:
    """What a cluster can do for the checks; checks that need more skip and say why."""

    holds_signing_key: bool = False
    """The service-account signing key is readable here, so tokens can be minted (local and local-node
    generate it; kind copies kubeadm's from its node; a ``kubeconfig`` cluster never has it)."""
    runs_pods: bool = False
    """Pods are scheduled and run by a real kubelet (kind, real clusters)."""
    controller_manager: bool = True
    """Legacy token Secrets get filled and namespaces get deleted."""
    default_workload_image: str | None = None
    """The image the reference workloads run in here, when the provider has its own (local-node builds
    one); None: the deploy layer's default (``python:3.11-slim``)."""
    owns_cluster: bool = False
    """The run created this cluster and removes it whole at the end; False: the cluster outlives the
    run, so the run deletes the objects it made (by their run label)."""


@runtime_checkable
class NodeControl(Protocol):
    """Optional: what a provider that runs its own node can do to it (local-node does)."""

    def restart_kubelet(self) -> None:
        """Stop and start the kubelet; its token cache is empty afterwards, so projected tokens are
        requested again and their files replaced in running pods."""

    def read_projected_file(self, pod_uid: str, volume: str, path: str) -> str:
        """The current content of ``path`` in the pod's projected ``volume``, read on the node.

        From the kubelet's side (``<root-dir>/pods/<uid>/volumes/kubernetes.io~projected/<volume>``),
        so it works for images without a shell or ``cat`` (distroless), where exec in the pod cannot.
        """

    def load_image_archive(self, path: Path) -> list[str]:
        """Import an OCI or docker-archive tarball into the node's container runtime.

        Returns the image references the node holds from it (usable with ``imagePullPolicy:
        IfNotPresent`` or ``Never``). Raises :class:`~pytest_k8s_sa.base.errors.K8sSAError` on a file that
        is not such an archive.
        """


@runtime_checkable
class KeyControl(Protocol):
    """Optional: rotation of the cluster's service-account signing key (local and local-node do it).

    Each step restarts the kube-apiserver with the new key files and returns once it is ready again
    (etcd keeps running: every object survives); tokens signed before a step are not re-signed.
    The returned value (``keys.KeyChange``) carries the key ids and the restart's seconds.
    """

    def add_signing_key(self) -> Any:
        """A new key signs every token from now on; all keys that verified still verify (the overlap)."""

    def retire_old_keys(self) -> Any:
        """Only the current signing key verifies from now on: tokens signed by older keys are refused."""

    def restore_original_key(self) -> Any:
        """The original key signs again and every key the cluster ever had verifies (undo, for fixtures)."""

    def signing_kid(self) -> str:
        """The ``kid`` of the key that signs now (the header of every new token)."""

    def verifying_kids(self) -> list[str]:
        """The ``kid`` of every rotated key that verifies now (the legacy-token key is not among them)."""

    @property
    def rotated(self) -> bool:
        """Whether the key set differs from what :meth:`restore_original_key` leaves."""


@runtime_checkable
class ServingStart(Protocol):
    """Optional: a provider that can hand its cluster out as soon as the apiserver serves the admin
    (local does), before kube-apiserver has created its default RBAC roles (~2 s more, mostly its own
    one-second poll). A setup that only needs the admin overlaps that; ``ClusterInfo.wait_ready``
    returns once the cluster is as ready as :meth:`Provider.create` leaves it."""

    def create_serving(self) -> ClusterInfo:
        """:meth:`Provider.create`, returning earlier; ``wait_ready`` of the result waits for the rest."""


@dataclass
class ClusterInfo:
    """What a provider knows about its cluster once it is up."""

    provider: str
    kubeconfig: Path
    capabilities: Capabilities
    issuer: str | None = None
    api_audiences: list[str] | None = None
    signing_key: Path | None = None
    log_paths: dict[str, Path] = field(default_factory=dict)
    node_control: NodeControl | None = None
    """Set by providers that control their node (restart the kubelet, load images)."""
    key_control: KeyControl | None = None
    """Set by providers that can rotate the service-account signing key (they run kube-apiserver)."""
    key_control_missing: str = "this provider cannot rotate the cluster's service-account signing key"
    """Why ``key_control`` is None here: the skip reason of the checks that need it."""
    cluster_ca: CertificateAuthority | None = field(default=None, repr=False)
    """The CA pods trust for the apiserver (their ``ca.crt``), where the provider holds its key
    (local-node; kind reads kubeadm's from its node): the pod-mode API cut presents a certificate
    from it in the outages that answer garbage over TLS. None: those outages are not played (the
    callee could not verify the cut)."""
    review_log: Path | None = None
    """kube-apiserver's audit log of every TokenReview (JSON lines), where the provider configures the
    apiserver (local, local-node; kind with the project's configuration, mounted out of the node): the
    review transcript of a failed check's artifacts. None: the provider cannot see the apiserver's
    reviews (an existing cluster, a kind configuration of the user's), the artifacts go without."""
    wait_ready: Callable[[float], None] | None = None
    """Set by :meth:`ServingStart.create_serving`: blocks (up to the seconds given) until the default
    roles exist and the controller manager runs; None: the cluster was ready when handed out."""
    refresh_logs: Callable[[], None] | None = None
    """Copies the component logs into ``log_paths`` before they are attached to a failed test's
    report, for providers whose logs live elsewhere (kind: inside the node container)."""

    def api_client(self) -> kubernetes.client.ApiClient:
        import kubernetes  # imported here: see the TYPE_CHECKING import above

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


@runtime_checkable
class Provider(Protocol):
    name: str

    def create(self) -> ClusterInfo:
        """Start or attach to the cluster and return what is known about it."""

    def export_logs(self, destination: Path) -> list[Path]:
        """Copy the cluster's component logs into ``destination``; return the files written."""

    def destroy(self) -> None:
        """Remove what :meth:`create` made; a no-op for clusters the provider did not create."""
