"""Import the kubernetes client's API classes in a thread while the cluster starts.

The client loads each API class (and the models it names) on first use: ``CoreV1Api`` alone costs
1.5 s on a quiet 2-core machine, 3 s under load, and without this it is paid by the first namespace
the run creates, after the control plane is up, on the path to the first check. Starting a control
plane is mostly waiting (processes booting, readiness polls), so the same import costs nothing
there. A module is imported once whichever thread gets there first (Python's import lock), so the
main thread simply finds it done, or waits for the rest of it.
"""

from __future__ import annotations

import threading

import kubernetes

API_CLASSES = ("CoreV1Api", "RbacAuthorizationV1Api", "AuthenticationV1Api")
"""The API classes a run uses first (namespaces, RBAC, TokenReview). Not ``AppsV1Api`` (0.3 s): only
pod-mode rollouts use it, on providers that take many seconds to start anyway, while on the local
provider it would only take the CPU from the control plane's start."""


def import_api_classes_in_background() -> threading.Thread:
    """Start importing :data:`API_CLASSES` in a daemon thread; returns it (joining is optional)."""

    def load() -> None:
        for name in API_CLASSES:
            getattr(kubernetes.client, name)

    thread = threading.Thread(target=load, name="k8s-sa-client-import", daemon=True)
    thread.start()
    return thread
