"""Deploy the reference workloads: the API service, the secret store and the data store.

Two ways, one result (:class:`Deployment`), one shape (context managers):

* :func:`deploy_processes` (clusters without a kubelet, ``local``): the workloads run as local
  processes; Pod objects, service accounts, RBAC and tokens are real API objects, and
  :mod:`pytest_k8s_sa.deploy.projector` plays the kubelet for the token files (fidelity ``emulated-kubelet``).
* :func:`deploy_manifests` (clusters whose kubelet runs pods): the templated manifests in
  ``fixtures/manifests`` are applied and the real kubelet projects and rotates the tokens
  (fidelity ``real``).

:func:`deploy_workloads` picks one by the cluster's capabilities. Modules: :mod:`.model` (what a
deployment is), :mod:`.processes`, :mod:`.manifests`, :mod:`.pods` (port-forward, exec, rollout).
"""

from .auto import deploy_workloads, start_secret_store
from .manifests import (
    DEFAULT_IMAGE,
    MANIFESTS_DIR,
    deploy_manifests,
    render_manifest,
    render_manifests,
    start_secret_store_pod,
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
    "deploy_workloads",
    "describe_pod",
    "exec_in_pod",
    "failing_reason",
    "render_manifest",
    "render_manifests",
    "start_secret_store",
    "start_secret_store_pod",
    "start_secret_store_process",
    "wait_for_rollout",
    "workload_image",
]
