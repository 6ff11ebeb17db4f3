"""Helpers for workloads running as real pods: port-forwarding, exec, rollout waiting and diagnosis.

The same code for every cluster whose kubelet runs pods (local-node, kind, real clusters): only the
apiserver must be reachable from the test process.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
import kubernetes
from kubernetes.client import ApiException

from ..base.errors import K8sSAError
from ..base.waiting import WaitTimeout, wait_until
from ..cluster.tokens import Token
from .model import Deployment, Workload

if TYPE_CHECKING:
    from ..providers.base import NodeControl

FAILING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Container waiting reasons after which a pod does not become ready without help."""

TRANSIENT_MOUNT_MESSAGES = ("not registered", "failed to sync configmap cache", "failed to sync secret cache")
"""FailedMount texts the kubelet emits while its informers catch up with a fresh pod (seen on a
loaded node right after the pod was bound); they pass by themselves. Any other FailedMount text
(a missing ConfigMap or Secret, a bad projected volume) does not, and fails the rollout at once."""
_STREAM_LOCK = threading.Lock()
"""kubernetes.stream patches the ApiClient for the duration of a call: one call at a time."""


class DeployError(K8sSAError):
    """The workloads did not roll out; the message carries the pods' events and logs."""


@dataclass
class Upstream:
    """One connection to the far side of a relay: where to read, how to write, how to close."""

    readable: socket.socket
    sendall: Callable[[bytes], Any]
    close: Callable[[], Any]

    @classmethod
    def of_socket(cls, sock: socket.socket) -> Upstream:
        return cls(sock, sock.sendall, sock.close)


class Relay:
    """A loopback listener joining every accepted connection to a fresh :class:`Upstream`.

    Each client connection gets its own upstream from ``connect``, so a closed client or a far side
    that went away and came back (a restarted pod) costs that one connection only: the listener
    keeps accepting. A failed ``connect`` closes the client's connection.
    """

    def __init__(self, connect: Callable[[], Upstream], name: str = "relay") -> None:
        self._connect = connect
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.local_port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            upstream = self._connect()
        except Exception:
            conn.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(conn, selectors.EVENT_READ, upstream.sendall)
        selector.register(upstream.readable, selectors.EVENT_READ, conn.sendall)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data(data)
        except OSError:
            return
        finally:
            selector.close()
            conn.close()
            with contextlib.suppress(Exception):
                upstream.close()

    def close(self) -> None:
        """Stop listening (connections in flight end within a second)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not
        self._listener.close()


class PortForward(Relay):
    """A loopback listener whose every connection is forwarded to ``pod:port`` through the API.

    One websocket per connection (``kubernetes.stream.portforward``), opened when the connection
    is accepted, so a restarted container of the same pod is reached by the next connection.
    """

    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str, pod: str, port: int) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.namespace, self.pod, self.port = namespace, pod, port
        super().__init__(self._open, name=f"port-forward {pod}:{port}")

    def _open(self) -> Upstream:
        from kubernetes.stream import portforward

        with _STREAM_LOCK:
            forward = portforward(
                self.core.connect_get_namespaced_pod_portforward,
                self.pod,
                self.namespace,
                ports=str(self.port),
            )
        try:
            remote = forward.socket(self.port)
            remote.setblocking(True)
        except BaseException:
            forward.close()
            raise
        return Upstream(remote._socket, remote.sendall, forward.close)


def describe_pod(core: kubernetes.client.CoreV1Api, pod: Any) -> str:
    """The pod's phase, container states, last events and log tails, as text for an error message."""
    name, namespace = pod.metadata.name, pod.metadata.namespace
    lines = [f"pod {namespace}/{name}: phase {pod.status.phase if pod.status else None}"]
    for status in (pod.status.container_statuses if pod.status else None) or []:
        state = status.state
        waiting = state.waiting if state else None
        terminated = (state.terminated if state else None) or (
            status.last_state.terminated if status.last_state else None
        )
        if waiting:
            lines.append(f"  {status.name}: waiting {waiting.reason}: {waiting.message or ''}".rstrip())
        if terminated:
            lines.append(f"  {status.name}: terminated {terminated.reason} (exit {terminated.exit_code})")
    with contextlib.suppress(ApiException):
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        lines.append("  events:")
        lines.extend(f"    {e.type} {e.reason}: {e.message}" for e in events[-15:])
    for previous in (True, False):
        with contextlib.suppress(ApiException):
            log = core.read_namespaced_pod_log(name, namespace, previous=previous, tail_lines=30)
            if log:
                lines.append(f"  log{' (previous container)' if previous else ''}:")
                lines.extend(f"    {line}" for line in log.splitlines())
    return "\n".join(lines)


def failing_reason(core: kubernetes.client.CoreV1Api, pod: Any) -> str | None:
    """Why ``pod`` will not become ready without help (None: it may still)."""
    status = pod.status
    statuses = ((status.container_statuses or []) + (status.init_container_statuses or [])) if status else []
    for container in statuses:
        waiting = container.state.waiting if container.state else None
        if waiting and waiting.reason in FAILING_REASONS:
            return str(waiting.reason)
    events = core.list_namespaced_event(
        pod.metadata.namespace, field_selector=f"involvedObject.name={pod.metadata.name},reason=FailedMount"
    ).items
    if any(not any(t in (e.message or "") for t in TRANSIENT_MOUNT_MESSAGES) for e in events):
        return "FailedMount"
    return None


def wait_for_rollout(
    api_client: kubernetes.client.ApiClient, targets: list[tuple[str, str]], timeout: float = 180.0
) -> dict[str, Any]:
    """Wait until every ``(namespace, app)`` Deployment has one ready pod; return the pods by app.

    Fails at once on ImagePullBackOff, CrashLoopBackOff, FailedMount and the like, with the pod's
    state, events and logs in the message.
    """
    core = kubernetes.client.CoreV1Api(api_client)
    ready: dict[str, Any] = {}

    def check() -> bool:
        for namespace, app in targets:
            if app in ready:
                continue
            pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
            for pod in pods:
                if pod.metadata.deletion_timestamp:
                    continue
                reason = failing_reason(core, pod)
                if reason:
                    raise DeployError(f"{app} failed to start ({reason}):\n{describe_pod(core, pod)}")
                conditions = {c.type: c.status for c in pod.status.conditions or []}
                if conditions.get("Ready") == "True":
                    ready[app] = pod
        return len(ready) == len(targets)

    try:
        wait_until(check, timeout, "workloads not ready", max_interval=1.0)
    except WaitTimeout as exc:
        details = []
        for namespace, app in targets:
            if app not in ready:
                for pod in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items:
                    details.append(describe_pod(core, pod))
                if not details:
                    details.append(f"no pod of {namespace}/{app} was created (is a scheduler running?)")
        raise DeployError(f"{exc}:\n" + "\n".join(details)) from None
    return ready


def exec_in_pod(
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None = None,
) -> str:
    """Run ``command`` in the pod and return its stdout (``kubectl exec``)."""
    from kubernetes.stream import stream

    core = kubernetes.client.CoreV1Api(api_client)
    kwargs: dict[str, Any] = {"container": container} if container else {}
    with _STREAM_LOCK:
        return str(
            stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=command,
                stderr=False,
                stdin=False,
                stdout=True,
                tty=False,
                **kwargs,
            )
        )


def file_reader(
    api_client: kubernetes.client.ApiClient, namespace: str, pod: str, path: str
) -> Callable[[], str]:
    """A function returning the current content of ``path`` in the pod (``cat`` through exec)."""
    return lambda: exec_in_pod(api_client, namespace, pod, ["cat", path])


def log_reader(api_client: kubernetes.client.ApiClient, namespace: str, pod: str) -> Callable[[], str]:
    """A function returning the pod's log."""
    core = kubernetes.client.CoreV1Api(api_client)
    return lambda: str(core.read_namespaced_pod_log(pod, namespace))


KUBELET_RESTART_TRIGGER = "real kubelet, restarted (empty token cache)"


def rotate_by_kubelet_restart(deployment: Deployment, node_control: NodeControl | None) -> None:
    """Let ``deployment.rotate_caller_token`` make the real kubelet replace the caller's token file now.

    Where the provider controls its node (local-node, kind): restarting the kubelet empties its
    in-memory token cache, so it requests a new token and rewrites the projected file in the running
    pod. Elsewhere nothing is set and the kubelet rotates only at 80% of the TTL (ROT-003).
    """
    if node_control is None:
        return
    deployment.rotate_on_demand = _kubelet_restart_rotation(deployment.caller, node_control.restart_kubelet)
    deployment.rotation_trigger = KUBELET_RESTART_TRIGGER


def _kubelet_restart_rotation(caller: Workload, restart_kubelet: Callable[[], None]) -> Callable[[], Token]:
    def rotate() -> Token:
        old = caller.current_token()
        restart_kubelet()
        found: dict[str, Token] = {}

        def replaced() -> bool:
            token = caller.current_token()
            if token.jti != old.jti:
                found["token"] = token
            return bool(found)

        wait_until(
            replaced,
            120,
            "the restarted kubelet did not replace the caller's token file",
            max_interval=1.0,
            # exec fails while the kubelet is starting again. With kube-apiserver/kubelet 1.34.4 and
            # 1.35.4 (not 1.36.3 or 1.37.2) such a read can also come back as text that is no JWT
            # (jwt.DecodeError), measured with benchmarks/versions.py: not yet replaced, read again.
            ignore=(ApiException, jwt.DecodeError),
        )
        return found["token"]

    return rotate
