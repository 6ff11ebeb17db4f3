"""Import the kubernetes client's API classes in a thread while the cluster starts.

The client loads each API class (and the models it names) on first use: ``CoreV1Api`` alone costs
1.2-1.5 s on a quiet 2-core machine, 3 s under load. A run's first objects do without it (plain JSON,
:mod:`.rest`), but the deploy's RBAC and everything after need the classes. Starting a control plane
is mostly waiting (processes booting, readiness polls), so the import costs nothing there; it is
started by the cluster fixture, not earlier: beside pytest's own imports and collection it would
only slow them down (one interpreter lock). A module is imported once whichever thread gets there
first (Python's import lock), so the main thread simply finds it done, or waits for the rest of it.
"""

from __future__ import annotations

import threading

import kubernetes

API_CLASSES = ("RbacAuthorizationV1Api", "CoreV1Api")
"""The API classes a run uses first, in the order it needs them (the callee's review rights, then the
rest of the deploy). Not ``AuthenticationV1Api``: reviews are plain JSON. Not ``AppsV1Api`` (0.3 s): only
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
