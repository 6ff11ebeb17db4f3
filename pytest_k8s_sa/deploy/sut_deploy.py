"""Deploy a team's system under test (a SUT file, :mod:`pytest_k8s_sa.sut.model`) like the reference ones.

The suite creates what the SUT's pods would find in a cluster: three namespaces (the allowed caller
``api``, the callee ``secret-store``, the intruder ``data-store``), their service accounts, the
callee's ``system:auth-delegator`` ClusterRoleBinding and a Service for the callee. Then:

* **process mode** (local provider, ``command``): the callee runs as a local process with
  ``cwd`` = the SUT file's folder. ``${KUBECONFIG}`` is a JSON kubeconfig that authenticates as the
  callee's *own* service account (a token the emulated kubelet keeps fresh), so RBAC applies as in a
  pod; its server is a :class:`~pytest_k8s_sa.deploy.apicut.process_mode.FlakyApi` in front of the apiserver
  (forwarding, TLS end to end), which the fail-closed checks switch to refuse, hang or answer
  garbage. A caller runs the same way, with its projected token in ``${TOKEN_PATH}`` (emulated
  kubelet) and ``${CALLEE_URL}`` a token tap (:mod:`pytest_k8s_sa.workloads.tap`) on loopback in
  this process, which relays to the callee and notes which token the caller sends.
* **pod mode** (providers that run pods; ``image``): Deployments of the image (an ``image_archive``
  is loaded through ``cluster.node_control`` first), the callee with its automounted
  service-account token (in-cluster config), the caller with a projected token volume at
  ``token_path`` and ``${CALLEE_URL}`` the Service of the same token tap, run as a pod of the
  workloads' image next to the caller; the suite reads the noted ``jti`` from the tap's status port.
  The same rollout waiting and diagnostics (events, logs) as the reference manifests, port-forwards
  on loopback. Where the provider controls its node (local-node, kind) the caller's token file can
  be replaced on demand by restarting the kubelet, as with the reference manifests. For the
  fail-closed checks the callee's in-cluster API address is re-pointed at an ``api-cut`` pod in its
  namespace (:mod:`.apicut.pod_mode` says exactly what changes in its pod spec: two env variables and
  ``enableServiceLinks: false``).

Without a SUT file, pod providers apply the reference manifests of ``fixtures/manifests`` instead
(mode ``manifests``), with the same cut patched into the rendered secret store.

:func:`deploy_sut` is the one way in: it picks the mode from the cluster and the SUT and composes
the small steps of :mod:`.steps` on one :class:`~.cleanup.Cleanups` stack. Either way (a context
manager) the result is a :class:`SutRun`: a
:class:`~pytest_k8s_sa.deploy.model.Deployment` (``secret_store`` is the callee; ``api`` the caller,
or only the allowed identity when the SUT has no caller; ``data_store`` the intruder identity the
suite plays itself) plus what the SUT-specific checks need.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..cluster import resources
from ..cluster.cluster import Cluster
from ..sut.model import Sut
from . import steps
from .apicut.pod_mode import ManifestsCut
from .apicut.process_mode import ApiCutControl
from .cleanup import Cleanups
from .manifests import deploy_manifests
from .model import Deployment
from .pods import rotate_by_kubelet_restart
from .projector import FIDELITY as EMULATED
from .steps import (  # re-exported: the SUT checks and benchmarks use them
    START_TIMEOUT,
    caller_first_grant,
    find_auth_delegator_binding,
    first_verdict,
    load_archives,
)

__all__ = [
    "START_TIMEOUT",
    "SutRun",
    "caller_first_grant",
    "deploy_mode",
    "deploy_sut",
    "find_auth_delegator_binding",
    "first_verdict",
    "load_archives",
]


@dataclass
class SutRun:
    """A deployed SUT: the workloads, and the handles the SUT checks use."""

    sut: Sut
    deployment: Deployment
    mode: str
    """``process``, ``pod``, or ``manifests`` (the reference workloads without a SUT file)."""
    binding: str | None = None
    """The callee's ``system:auth-delegator`` ClusterRoleBinding (None: a ``jwks`` callee has none)."""
    api_cut: ApiCutControl | None = None
    """The cut between the callee and its Kubernetes API (process mode: a loopback proxy named by its
    kubeconfig; pod mode: :mod:`.apicut.pod_mode`); None: the callee's API cannot be cut here."""
    caller_jti: Callable[[], str | None] | None = field(default=None, repr=False)
    """The ``jti`` of the token the caller sends now (None: cannot be observed here)."""
    labels: dict[str, str] = field(default_factory=dict)
    api_cut_unavailable: str | None = None
    """Pod mode: why ``api_cut`` is None (the SUT sets the address itself, or the cut did not start)."""

    @property
    def has_caller(self) -> bool:
        return self.sut.caller is not None


def deploy_mode(cluster: Cluster, sut: Sut) -> str:
    """``process`` without a kubelet; with one, ``manifests`` for the reference workloads, else ``pod``."""
    if not cluster.capabilities.runs_pods:
        return "process"
    return "manifests" if sut.is_reference else "pod"


@contextlib.contextmanager
def deploy_sut(
    cluster: Cluster,
    names: Callable[[str], str],
    workdir: Path,
    sut: Sut,
    *,
    on_caller: Callable[[steps.Identity], None] | None = None,
) -> Iterator[SutRun]:
    """Deploy ``sut`` (a team's, or the reference workloads') on ``cluster``; undo it all on exit.

    The one deploy path of the suite: the mode follows from the cluster and the SUT
    (:func:`deploy_mode`), the steps register their undo on one stack, so a failure halfway undoes
    exactly what was made. A :class:`~..errors.K8sSAError` (a SutError, a DeployError) says why it
    did not deploy.

    ``cluster`` may still be getting ready (``k8s_cluster_serving``): the deploy waits for it before
    the workloads start. ``on_caller`` is told (process and pod mode) the allowed caller's identity
    as soon as its namespace and service account exist (before the callee's and the intruder's), so
    the suite can start work of its own there (its revocation tokens) while the rest is deployed; it
    must not block.
    """
    compose = {"process": _processes, "pod": _pods, "manifests": _manifests}[deploy_mode(cluster, sut)]
    with Cleanups() as stack:
        labels = resources.run_labels(cluster.run_id)
        target = steps.Target(cluster, names, workdir, sut, stack, labels, on_caller=on_caller)
        yield compose(target)


def _processes(target: steps.Target) -> SutRun:
    """Process mode: the callee (and caller) as local processes, an emulated kubelet, a loopback cut."""
    sut = target.sut
    steps.require(
        sut,
        "command",
        "on the local provider, which runs the SUT as processes; or give --k8s-provider local-node, kind "
        "or kubeconfig (they run pods)",
    )
    ids = steps.identities(target)
    binding = steps.grant_review_rights(target, ids.callee)
    steps.open_issuer_discovery(target)
    cut = steps.process_cut(target, ids.callee)
    steps.cluster_ready(target)  # the callee's review rights name a default role
    callee = steps.process_callee(target, ids, cut)
    verdict = steps.callee_ready(target, ids.caller, callee.url)
    caller = ids.caller.workload()
    caller_jti: Callable[[], str | None] | None = None
    refresh = 60.0
    if sut.caller is not None:
        tap = steps.process_tap(target, callee.url)
        caller = steps.process_caller(target, ids, tap.url)
        caller_jti = lambda: tap.last_jti  # noqa: E731
        refresh = sut.caller.token_refresh_seconds
    deployment = Deployment(
        caller=caller,
        callee=callee,
        intruder=ids.intruder.workload(),
        fidelity=EMULATED,
        audience=sut.callee.audience,
        api_token_refresh_seconds=refresh,
    )
    deployment.timings = {
        "deploy_seconds": round(time.monotonic() - target.started, 2),
        "callee_start_to_first_verdict_seconds": round(verdict, 2),
    }
    return SutRun(sut, deployment, "process", binding, cut.proxy, caller_jti, target.labels)


def _pods(target: steps.Target) -> SutRun:
    """Pod mode: Deployments of the SUT's image(s), the tap as a workload pod, the cut re-pointed."""
    sut, cluster = target.sut, target.cluster
    steps.require(
        sut,
        "image",
        f"on the {cluster.provider} provider, which runs pods; or use --k8s-provider local with `command`",
    )
    steps.cluster_ready(target)
    stream_client = target.stream_client()
    load_archives(cluster, sut)
    ids = steps.identities(target)
    binding = steps.grant_review_rights(target, ids.callee)
    steps.open_issuer_discovery(target)
    rollout = steps.Rollout()
    cut, cut_pod = steps.pod_callee(target, ids, rollout)
    if sut.caller is not None:
        tap_url = steps.pod_tap(target, ids, rollout)
        steps.pod_caller(target, ids, rollout, tap_url)
    pods = rollout.run(target)
    rolled_out = time.monotonic() - target.started
    callee_forward = steps.forward(target, stream_client, pods["callee"], sut.callee.port)
    callee = steps.pod_workload(target, ids.callee, pods["callee"], callee_forward.url)
    verdict = steps.callee_ready(target, ids.caller, callee.url)
    cut_control = None
    if cut_pod is not None:
        cut_control = cut.connect(stream_client, cut_pod)
        target.stack.defer(cut_control.close)
    caller = ids.caller.workload()
    caller_jti: Callable[[], str | None] | None = None
    refresh = 60.0
    caller_verdict = -1.0
    if sut.caller is not None:
        tap_forward = steps.forward(target, stream_client, pods[steps.TAP], steps.TAP_STATUS_PORT)
        caller_jti = functools.partial(steps.tapped_jti, tap_forward.url)
        caller_pod = pods["caller"]
        caller_forward = steps.forward(target, stream_client, caller_pod, sut.caller.port)
        reader = steps.token_reader(cluster, stream_client, caller_pod, sut.caller.token_path)
        caller = steps.pod_workload(target, ids.caller, caller_pod, caller_forward.url, reader)
        refresh = sut.caller.token_refresh_seconds
        # The Service's endpoints and the node's proxy rules follow the rollout by a moment.
        caller_verdict = caller_first_grant(caller_forward.url + sut.caller.call_path, START_TIMEOUT)
    deployment = Deployment(
        caller=caller,
        callee=callee,
        intruder=ids.intruder.workload(),
        fidelity="real",
        audience=sut.callee.audience,
        api_token_refresh_seconds=refresh,
    )
    deployment.timings = {
        "rollout_seconds": round(rolled_out, 2),
        "deploy_to_first_verdict_seconds": round(time.monotonic() - target.started, 2),
        "ready_to_first_verdict_seconds": round(verdict, 2),
    }
    if sut.caller is not None:
        deployment.timings["caller_first_grant_seconds"] = caller_verdict
        rotate_by_kubelet_restart(deployment, cluster.node_control)
    return SutRun(
        sut,
        deployment,
        "pod",
        binding,
        cut_control,
        caller_jti,
        target.labels,
        api_cut_unavailable=cut.unavailable,
    )


def _manifests(target: steps.Target) -> SutRun:
    """The reference workloads on a pod provider: ``fixtures/manifests`` applied, the secret store's
    in-cluster API address re-pointed at an api-cut pod (the fail-closed checks)."""
    cluster = target.cluster
    steps.cluster_ready(target)
    cut = ManifestsCut(cluster, target.labels)
    stream_client = target.stream_client()
    deployed = target.stack.enter_context(deploy_manifests(cluster, target.names, target.workdir, patch=cut))
    control = cut.connect(cluster.api_client, stream_client)
    if control is not None:
        target.stack.defer(control.close)
    store = deployed.callee
    return SutRun(
        target.sut,
        deployed,
        "manifests",
        binding=find_auth_delegator_binding(cluster.api_client, store.namespace, store.service_account),
        api_cut=control,
        caller_jti=lambda: deployed.caller.get("/debug/token-info").json().get("jti"),
        api_cut_unavailable=cut.cut.unavailable if cut.cut else None,
    )
