"""Cluster DNS: CoreDNS v1.15.0 (built from its Go module) as a Deployment, Service ``kube-dns``.

The Corefile serves ``cluster.local`` (and reverse zones) from the API and has **no** ``forward``
plugin: a name outside the cluster fails at once instead of being sent to a resolver off the
machine. The Service address is :data:`~.network.DNS_SERVICE_IP` (198.18.0.10), the kubelet's
``clusterDNS``.
"""

from __future__ import annotations

from typing import Any

import kubernetes
import yaml
from kubernetes.client import ApiException

from ...base.waiting import wait_until
from .images import COREDNS_IMAGE
from .network import DNS_SERVICE_IP

NAMESPACE = "kube-system"
NAME = "coredns"

COREFILE = """\
.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
"""

MANIFEST = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: coredns, namespace: kube-system}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "pytest-k8s-sa:coredns"}}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "pytest-k8s-sa:coredns"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pytest-k8s-sa:coredns"}}
subjects: [{{kind: ServiceAccount, name: coredns, namespace: kube-system}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: coredns, namespace: kube-system}}
data: {{}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: coredns, namespace: kube-system}}
spec:
  replicas: 1
  selector: {{matchLabels: {{k8s-app: kube-dns}}}}
  template:
    metadata: {{labels: {{k8s-app: kube-dns}}}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: {COREDNS_IMAGE}
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        volumeMounts: [{{name: config, mountPath: /etc/coredns, readOnly: true}}]
        readinessProbe: {{httpGet: {{path: /ready, port: 8181}}, periodSeconds: 1}}
        resources: {{limits: {{memory: 128Mi}}}}
      volumes: [{{name: config, configMap: {{name: coredns}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}
spec:
  clusterIP: {DNS_SERVICE_IP}
  selector: {{k8s-app: kube-dns}}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
"""


def objects() -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(MANIFEST) if doc]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            doc["data"] = {"Corefile": COREFILE}
    return docs


def deploy(api_client: kubernetes.client.ApiClient, timeout: float = 120.0) -> None:
    """Create CoreDNS and wait until its pod is ready."""
    for doc in objects():
        try:
            kubernetes.utils.create_from_dict(api_client, doc)
        except kubernetes.utils.FailToCreateError as exc:
            if not all(isinstance(e, ApiException) and e.status == 409 for e in exc.api_exceptions):
                raise
    apps = kubernetes.client.AppsV1Api(api_client)

    def ready() -> bool:
        status = apps.read_namespaced_deployment(NAME, NAMESPACE).status
        return bool(status.ready_replicas)

    wait_until(ready, timeout, "CoreDNS did not become ready", max_interval=0.5)
