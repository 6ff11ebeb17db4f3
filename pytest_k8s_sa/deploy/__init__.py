"""Deploy the reference workloads: the API service, the secret store and the data store.

Two ways, one result (:class:`Deployment`), one shape (context managers):

* :func:`deploy_processes` (clusters without a kubelet, ``local``): the workloads run as local
  processes; Pod objects, service accounts, RBAC and tokens are real API objects, and
  :mod:`pytest_k8s_sa.deploy.projector` plays the kubelet for the token files (fidelity ``emulated-kubelet``).
* :func:`deploy_manifests` (clusters whose kubelet runs pods): the templated manifests in
  ``fixtures/manifests`` are applied and the real kubelet projects and rotates the tokens
  (fidelity ``real``).

:mod:`.sut_deploy` deploys a team's SUT file (or the reference SUT) the same two ways, with the API
cut (:mod:`.apicut`) and the token tap between its workloads. Modules: :mod:`.model` (what a
deployment is), :mod:`.processes` (with :mod:`.projector`, the emulated kubelet), :mod:`.manifests`,
:mod:`.pods` (port-forward, exec, rollout), :mod:`.loadgen` (load for the benchmarks). Knows the
cluster, the SUT model and the stdlib workloads; nothing of pytest.
"""

from .manifests import (
    DEFAULT_IMAGE,
    MANIFESTS_DIR,
    deploy_manifests,
    render_manifest,
    render_manifests,
    workload_image,
)
from .model import API_TOKEN_REFRESH_SECONDS, AUDIENCE, TOKEN_EXPIRATION_SECONDS, Deployment, Workload
from .pods import (
    FAILING_REASONS,
    DeployError,
    PortForward,
    Relay,
    Upstream,
    describe_pod,
    exec_in_pod,
    failing_reason,
    wait_for_rollout,
)
from .processes import deploy_processes, start_secret_store_process

__all__ = [
    "API_TOKEN_REFRESH_SECONDS",
    "AUDIENCE",
    "DEFAULT_IMAGE",
    "FAILING_REASONS",
    "MANIFESTS_DIR",
    "TOKEN_EXPIRATION_SECONDS",
    "DeployError",
    "Deployment",
    "PortForward",
    "Relay",
    "Upstream",
    "Workload",
    "deploy_manifests",
    "deploy_processes",
    "describe_pod",
    "exec_in_pod",
    "failing_reason",
    "render_manifest",
    "render_manifests",
    "start_secret_store_process",
    "wait_for_rollout",
    "workload_image",
]
