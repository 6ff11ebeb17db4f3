"""A real, embedded Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

Modelled on controller-runtime's envtest (``Environment -> ControlPlane{Etcd, APIServer}``) with
one addition: the controller manager, running only the service-account, service-account-token,
root-CA and namespace controllers. Those are what this project needs from it: the ``default``
service account in each namespace, legacy ``kubernetes.io/service-account-token`` Secrets filled
in, and deleted namespaces actually going away.

Every component's flags are a plain dict built by ``default_flags()``; callers may edit it before
``start()`` (as envtest's ``Configure()``), and a flag set to ``None`` is dropped.

Nothing here is a fake: tokens are signed, reviewed and revoked by the real kube-apiserver.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..base.kubeconfig import (
    client_certificate_kubeconfig,  # re-exported: the one writer
)
from ..base.ports import free_port
from ..base.process import Process, forget, kill_group, process_start_time, stop_together, sweep_orphans
from .binaries import Binaries
from .pki import CertificateAuthority, service_account_signing_key
from .signingkeys import SigningKeys

LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "198.18.0.0/20"
"""Service addresses come from 198.18.0.0/15 (RFC 2544, for network testing): never 10/8,
172.16/12 or 192.168/16, which may be real networks around the machine."""
KUBERNETES_SERVICE_IP = "198.18.0.1"

Flags = MutableMapping[str, str | None]

BOOTSTRAP_HOOKS = (
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
)
"""kube-apiserver's post-start hooks that create its default objects (the RBAC roles and bindings, the
priority classes). Each waits a full second before its first attempt (``wait.Poll``), then writes a
hundred objects: /readyz turns 200 ~1.7 s after the apiserver first serves requests."""
SERVING_READYZ = "/readyz?" + "&".join(f"exclude={hook}" for hook in BOOTSTRAP_HOOKS)
"""Ready but for :data:`BOOTSTRAP_HOOKS`: the admin (``system:masters``, which RBAC does not consult)
can create namespaces, service accounts, pods and tokens and review them already."""

TEARDOWN_GRACE = 0.05
"""Seconds each component gets after SIGTERM when the whole control plane stops
(:meth:`ControlPlane.stop`): the cluster is thrown away with its data, so there is nothing to drain
(the apiserver writes each TokenReview's audit event before it answers, so the review transcript is
complete without a graceful shutdown)."""
APISERVER_STOP_GRACE = 3.0
"""Seconds a restarted kube-apiserver gets after SIGTERM before SIGKILL. Its graceful shutdown waits
for open watches and sometimes takes the full 10 s of the default (measured: 1.2 s, then 11.3 s);
etcd holds every object, so nothing is lost by cutting it short."""

REVIEW_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    resources: [{group: authentication.k8s.io, resources: [tokenreviews]}]
  - level: None
"""
"""kube-apiserver's audit policy here: every TokenReview with its request and answer, nothing else.

It is the review transcript of a failed check's artifacts (:mod:`pytest_k8s_sa.report.artifacts`):
which token the callee asked about, for which audiences, and what the apiserver answered, written by
the apiserver itself, so a team's callee needs no logging of its own. The log holds the reviewed
tokens in full (the apiserver's own record): it lives in the control plane's work folder, apart
from ``logs/`` (which the providers export), and the artifacts keep only each token's ``jti`` and
claims."""
AUDIT_POLICY_FILE = "policy.yaml"
REVIEW_LOG = "tokenreviews.jsonl"


def review_audit_flags(folder: str) -> dict[str, str]:
    """kube-apiserver's flags for the TokenReview audit log, its policy and log in ``folder`` (as the
    apiserver sees it: a host folder here, a mount inside kind's node)."""
    return {
        "audit-policy-file": f"{folder}/{AUDIT_POLICY_FILE}",
        "audit-log-path": f"{folder}/{REVIEW_LOG}",
        "audit-log-format": "json",
        # The log backend's default mode, written out: each event is on disk before the request
        # returns, so a failed check's artifacts read the reviews it caused.
        "audit-log-mode": "blocking",
        "audit-log-maxsize": "200",
        "audit-log-maxbackup": "1",
    }


APISERVER_GO_ENV = {"GOGC": "400"}
"""kube-apiserver's Go runtime: collect garbage when the heap has grown 4x instead of 1x. Its start
allocates much and keeps little, so it runs ~0.25 s sooner to serving for ~90 MB more memory; a
``GOGC`` in the environment wins."""


def apiserver_env() -> dict[str, str]:
    """The environment kube-apiserver starts with: this one, plus :data:`APISERVER_GO_ENV` unless set."""
    return {**APISERVER_GO_ENV, **os.environ}


def _argv(binary: Path, flags: Mapping[str, str | None]) -> list[str]:
    return [str(binary)] + [f"--{name}={value}" for name, value in flags.items() if value is not None]


@dataclass
class Certificates:
    """Paths of the PKI files written for one control plane."""

    directory: Path
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public_key: Path
    """Every public key the apiserver accepts (``--service-account-key-file``): the rotated keys that
    verify now and the legacy key (see :mod:`pytest_k8s_sa.components.signingkeys`)."""
    sa_signing_key: Path
    """The key TokenRequest signs with now (``--service-account-signing-key-file``)."""
    sa_legacy_key: Path
    """The controller manager's key for legacy Secret tokens; not rotated."""

    @property
    def signing_keys(self) -> SigningKeys:
        """The rotatable key set behind ``sa_signing_key`` and ``sa_public_key``."""
        return SigningKeys(self.sa_signing_key, self.sa_public_key, self.sa_legacy_key.with_suffix(".crt"))

    @classmethod
    def generate(
        cls, directory: Path, *, ca: CertificateAuthority | None = None, extra_ips: tuple[str, ...] = ()
    ) -> Certificates:
        """``ca``: issue from this authority (default: a new one); ``extra_ips``: more serving SANs."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = ca or CertificateAuthority()
        ca_path = directory / "ca.crt"
        ca_path.write_bytes(ca.cert_pem)
        serving = ca.issue(
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(LOOPBACK, KUBERNETES_SERVICE_IP, *extra_ips),
            server=True,
        )
        serving_cert, serving_key = serving.write(directory, "serving")
        admin = ca.issue("pytest-k8s-sa-admin", organization="system:masters", client=True)
        admin_cert, admin_key = admin.write(directory, "admin")
        sa_public, sa_key = service_account_signing_key().write(directory, "sa")
        _, legacy_key = service_account_signing_key().write(directory, "sa-legacy")
        certs = cls(
            directory,
            ca_path,
            serving_cert,
            serving_key,
            admin_cert,
            admin_key,
            sa_public,
            sa_key,
            legacy_key,
        )
        certs.signing_keys.initialise(sa_key.read_bytes())  # sa.crt: the original and the legacy key
        return certs


@dataclass
class Etcd:
    binary: Path
    data_dir: Path
    log_path: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.client_port}"

    def default_flags(self) -> Flags:
        peer = f"http://{LOOPBACK}:{self.peer_port}"
        return {
            "name": "default",
            "data-dir": str(self.data_dir),
            "listen-client-urls": self.url,
            "advertise-client-urls": self.url,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"default={peer}",
            "unsafe-no-fsync": "true",  # a test cluster: durability is not worth the fsync latency
            # One member, no peers to hear from: the defaults (100 ms beats, a 1 s election) only
            # delay its first election, which took 0.2-0.9 s; with these it is healthy in ~0.08 s.
            "heartbeat-interval": "10",
            "election-timeout": "50",
            "log-level": "warn",
        }

    def process(self, flags: Mapping[str, str | None], **kwargs: object) -> Process:
        def healthy() -> bool:
            answer = requests.get(f"{self.url}/health", timeout=1)
            return answer.ok and answer.json().get("health") == "true"

        return Process("etcd", _argv(self.binary, flags), self.log_path, health=healthy, **kwargs)  # type: ignore[arg-type]


@dataclass
class APIServer:
    binary: Path
    certs: Certificates
    etcd_url: str
    cert_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    host: str = LOOPBACK
    """Where it listens and what it advertises (the local-node provider: its veth's host address)."""
    audit_dir: Path | None = None
    """Where the TokenReview audit log goes (:data:`REVIEW_AUDIT_POLICY`); None: no audit log."""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def review_log(self) -> Path | None:
        """The audit log of every TokenReview (JSON lines), or None when auditing is off."""
        return None if self.audit_dir is None else self.audit_dir / REVIEW_LOG

    def write_audit_policy(self) -> Path | None:
        """Write the audit policy file the flags name (before the apiserver starts)."""
        if self.audit_dir is None:
            return None
        self.audit_dir.mkdir(parents=True, exist_ok=True)
        policy = self.audit_dir / AUDIT_POLICY_FILE
        policy.write_text(REVIEW_AUDIT_POLICY)
        return policy

    @property
    def issuer(self) -> str:
        """An https issuer on the apiserver itself, so issuer discovery is served and reachable."""
        return self.url

    def default_flags(self) -> Flags:
        return {
            "advertise-address": self.host,
            "bind-address": self.host,
            "secure-port": str(self.port),
            "etcd-servers": self.etcd_url,
            "cert-dir": str(self.cert_dir),
            "tls-cert-file": str(self.certs.serving_cert),
            "tls-private-key-file": str(self.certs.serving_key),
            "client-ca-file": str(self.certs.ca),
            "service-account-issuer": self.issuer,
            "service-account-key-file": str(self.certs.sa_public_key),
            "service-account-signing-key-file": str(self.certs.sa_signing_key),
            "api-audiences": self.issuer,
            "authorization-mode": "RBAC",
            "service-cluster-ip-range": SERVICE_CLUSTER_IP_RANGE,
            "allow-privileged": "true",
            # No kubelet answers for 127.0.0.1, and a loopback address may not be an endpoint.
            "endpoint-reconciler-type": "none",
            "profiling": "false",
            # A test cluster holds a few hundred objects and one client at a time: the watch cache and
            # API Priority and Fairness only cost start-up work there (~0.3 s of the ~2 s to serving,
            # and 0.5 CPU-seconds); reads then go to etcd, every request straight to its handler.
            "watch-cache": "false",
            "enable-priority-and-fairness": "false",
            **self._audit_flags(),
        }

    def _audit_flags(self) -> dict[str, str]:
        return {} if self.audit_dir is None else review_audit_flags(str(self.audit_dir))

    def get(self, path: str, timeout: float = 2.0) -> requests.Response:
        """A request as the admin user (client certificate in system:masters)."""
        return requests.get(
            f"{self.url}{path}",
            cert=(str(self.certs.admin_cert), str(self.certs.admin_key)),
            verify=str(self.certs.ca),
            timeout=timeout,
        )

    def process(self, flags: Mapping[str, str | None], *, serving: bool = False, **kwargs: object) -> Process:
        """``serving``: healthy once it serves requests (:data:`SERVING_READYZ`), before its
        bootstrap roles exist; else once ``/readyz`` is 200."""
        path = SERVING_READYZ if serving else "/readyz"
        return Process(
            "kube-apiserver",
            _argv(self.binary, flags),
            self.log_path,
            env=apiserver_env(),
            health=lambda: self.get(path).status_code == 200,
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass
class ControllerManager:
    binary: Path
    certs: Certificates
    kubeconfig: Path
    cert_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)

    def default_flags(self) -> Flags:
        return {
            "kubeconfig": str(self.kubeconfig),
            "controllers": "serviceaccount-token,serviceaccount,root-ca-cert-publisher,namespace",
            # Its own key, not the rotated one: legacy Secret tokens are not part of a rotation.
            "service-account-private-key-file": str(self.certs.sa_legacy_key),
            "root-ca-file": str(self.certs.ca),
            "leader-elect": "false",
            "use-service-account-credentials": "false",
            "bind-address": LOOPBACK,
            "secure-port": str(self.port),
            "cert-dir": str(self.cert_dir),
            "tls-cert-file": str(self.certs.serving_cert),
            "tls-private-key-file": str(self.certs.serving_key),
        }

    def process(self, flags: Mapping[str, str | None], **kwargs: object) -> Process:
        def healthy() -> bool:
            url = f"https://{LOOPBACK}:{self.port}/healthz"
            return requests.get(url, verify=str(self.certs.ca), timeout=1).status_code == 200

        return Process(
            "kube-controller-manager",
            _argv(self.binary, flags),
            self.log_path,
            health=healthy,
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass
class Scheduler:
    """kube-scheduler, on the host next to the apiserver, leader election off.

    Only providers with a node start it (local-node): the local provider has no kubelet, so pods
    stay unscheduled there by design. ``serving`` pair: the apiserver's loopback serving pair.
    """

    binary: Path
    kubeconfig: Path
    certs: Certificates
    log_path: Path
    port: int = field(default_factory=free_port)

    def default_flags(self) -> Flags:
        return {
            "kubeconfig": str(self.kubeconfig),
            "authentication-kubeconfig": str(self.kubeconfig),
            "authorization-kubeconfig": str(self.kubeconfig),
            "leader-elect": "false",
            "bind-address": LOOPBACK,
            "secure-port": str(self.port),
            "tls-cert-file": str(self.certs.serving_cert),
            "tls-private-key-file": str(self.certs.serving_key),
        }

    def process(self, flags: Mapping[str, str | None] | None = None, **kwargs: object) -> Process:
        def healthy() -> bool:
            url = f"https://{LOOPBACK}:{self.port}/healthz"
            return requests.get(url, verify=str(self.certs.ca), timeout=1).status_code == 200

        return Process(
            "kube-scheduler",
            _argv(self.binary, self.default_flags() if flags is None else flags),
            self.log_path,
            health=healthy,
            **kwargs,  # type: ignore[arg-type]
        )


DEFAULT_SERVICE_ACCOUNT = "/api/v1/namespaces/default/serviceaccounts/default"
"""Made by the controller manager: once it is served, the controller manager runs and writes."""


def recorded_get(record: Mapping[str, object], path: str, timeout: float = 2.0) -> requests.Response:
    """A request as the admin to the apiserver of ``record`` (:meth:`ControlPlane.apiserver_record`),
    from a process that did not start it (an xdist worker)."""
    cert = (str(record["admin_cert"]), str(record["admin_key"]))
    return requests.get(f"{record['url']}{path}", cert=cert, verify=str(record["ca"]), timeout=timeout)


def restart_recorded_apiserver(
    record: Mapping[str, object],
    pid: int | None,
    start_time: str | None,
    *,
    owner_pid: int | None,
    timeout: float,
) -> Process:
    """Restart an apiserver this process did not start (an xdist worker of a shared cluster).

    ``record``: :meth:`ControlPlane.apiserver_record`; ``pid``/``start_time``: the running one, stopped
    only if it is still that process (a recycled pid is left alone). The new process belongs to
    ``owner_pid`` (the run) and does not die with this process. Returns it once ``/readyz`` is 200.
    """
    if pid is not None and process_start_time(pid) == start_time:
        kill_group(pid, grace=APISERVER_STOP_GRACE)
    if pid is not None:
        forget(pid)

    def ready() -> bool:
        return recorded_get(record, "/readyz").status_code == 200

    argv = [str(a) for a in record["argv"]]  # type: ignore[attr-defined]
    proc = Process(
        "kube-apiserver",
        argv,
        Path(str(record["log"])),
        env=apiserver_env(),
        health=ready,
        owner_pid=owner_pid,
        die_with_parent=False,
    )
    proc.start(timeout=timeout)
    return proc


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports under ``workdir``.

    ``owner_pid`` is the process whose death makes the components orphans (see
    :mod:`pytest_k8s_sa.base.process`); ``die_with_parent`` ties them to the starting thread, which is
    right for one pytest process but not for an xdist worker whose cluster outlives it.
    """

    def __init__(
        self,
        workdir: Path,
        binaries: Binaries,
        *,
        owner_pid: int | None = None,
        die_with_parent: bool = True,
        bind_address: str = LOOPBACK,
        ca: CertificateAuthority | None = None,
        launched: threading.Event | None = None,
    ) -> None:
        """``bind_address``/``ca``: for the local-node provider (apiserver on the node's veth, node
        certificates from the same CA); the defaults give the loopback-only control plane.
        ``launched``: set by :meth:`start` once kube-apiserver is spawned (or the start failed)."""
        self.launched = launched or threading.Event()
        """Set once kube-apiserver is spawned, ~2 s before it serves: from then on its boot runs on
        its own, so a caller that held back its own CPU-heavy work (the early start) can go on."""
        self.workdir = workdir
        self.binaries = binaries
        self.owner_pid = owner_pid
        self.die_with_parent = die_with_parent
        extra_ips = () if bind_address == LOOPBACK else (bind_address,)
        self.certs = Certificates.generate(workdir / "pki", ca=ca, extra_ips=extra_ips)
        logs = workdir / "logs"
        self.etcd = Etcd(binaries.etcd, workdir / "etcd", logs / "etcd.log")
        self.apiserver = APIServer(
            binaries.kube_apiserver,
            self.certs,
            self.etcd.url,
            workdir / "apiserver",
            logs / "kube-apiserver.log",
            host=bind_address,
            audit_dir=workdir / "audit",
        )
        self.apiserver.write_audit_policy()
        self.kubeconfig = workdir / "kubeconfig"
        self.controller_manager = ControllerManager(
            binaries.kube_controller_manager,
            self.certs,
            self.kubeconfig,
            workdir / "controller-manager",
            logs / "kube-controller-manager.log",
        )
        self.etcd_flags = self.etcd.default_flags()
        self.apiserver_flags = self.apiserver.default_flags()
        self.controller_manager_flags = self.controller_manager.default_flags()
        self._processes: list[Process] = []
        self.startup_seconds: float | None = None

    @property
    def server(self) -> str:
        return self.apiserver.url

    @property
    def issuer(self) -> str:
        return str(self.apiserver_flags["service-account-issuer"])

    @property
    def api_audiences(self) -> list[str]:
        return str(self.apiserver_flags.get("api-audiences") or self.issuer).split(",")

    @property
    def review_log(self) -> Path | None:
        """kube-apiserver's audit log of TokenReviews (see :data:`REVIEW_AUDIT_POLICY`)."""
        return self.apiserver.review_log

    @property
    def processes(self) -> list[Process]:
        return list(self._processes)

    @property
    def log_paths(self) -> dict[str, Path]:
        return {p.name: p.log_path for p in self._processes}

    def start(self, timeout: float = 90.0, *, ready: bool = True) -> None:
        """Start the components in order and wait until the cluster can serve tokens.

        "Ready" means ``/readyz`` answers 200 and the ``default`` service account exists, which
        proves the controller manager runs and writes to the apiserver. ``ready=False`` returns
        earlier, once the apiserver serves the admin (:data:`SERVING_READYZ`) and the controller
        manager has started: a caller overlaps the last ~2 s with its own setup and calls
        :meth:`wait_ready` before anything needs the default roles.
        """
        sweep_orphans()
        started = time.monotonic()
        common: dict[str, Any] = {"owner_pid": self.owner_pid, "die_with_parent": self.die_with_parent}
        client_certificate_kubeconfig(
            self.server, self.certs.ca, self.certs.admin_cert, self.certs.admin_key
        ).write(self.kubeconfig)
        try:
            for proc in (
                self.etcd.process(self.etcd_flags, **common),
                self.apiserver.process(self.apiserver_flags, serving=True, **common),
                self.controller_manager.process(self.controller_manager_flags, **common),
            ):
                self._processes.append(proc)
                proc.start(timeout=timeout, wait=False)
                if proc.name == "kube-apiserver":
                    self.launched.set()
                # The controller manager's health is waited for with the rest (wait_ready).
                if proc.name != "kube-controller-manager":
                    proc.wait_healthy(timeout)
            if ready:
                self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            self.launched.set()
        self.startup_seconds = time.monotonic() - started

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until ``/readyz`` is 200 (the default roles exist) and the controller manager has
        made the ``default`` service account; raises ``ProcessError`` at ``timeout``."""
        api = next(p for p in self._processes if p.name == "kube-apiserver")
        next(p for p in self._processes if p.name == "kube-controller-manager").wait_healthy(timeout)
        api.wait_for(lambda: self.apiserver.get("/readyz").status_code == 200, timeout, what="ready")
        api.wait_for(
            lambda: self.apiserver.get(DEFAULT_SERVICE_ACCOUNT).ok,
            timeout,
            what="serving the default service account (kube-controller-manager running)",
        )

    def restart_apiserver(self, timeout: float = 90.0) -> None:
        """Stop kube-apiserver and start it again with the same flags, which re-reads its key files.

        etcd keeps running, so every object survives; the other components and clients reconnect by
        themselves. Returns once ``/readyz`` answers 200, or raises ``ProcessError`` at ``timeout``.
        """
        index = next(i for i, p in enumerate(self._processes) if p.name == "kube-apiserver")
        self._processes[index].stop(grace=APISERVER_STOP_GRACE)
        common: dict[str, Any] = {"owner_pid": self.owner_pid, "die_with_parent": self.die_with_parent}
        proc = self.apiserver.process(self.apiserver_flags, **common)
        self._processes[index] = proc
        proc.start(timeout=timeout)

    def apiserver_record(self) -> dict[str, object]:
        """What another process needs to restart this apiserver (:func:`restart_recorded_apiserver`)."""
        return {
            "argv": _argv(self.apiserver.binary, self.apiserver_flags),
            "log": str(self.apiserver.log_path),
            "url": self.apiserver.url,
            "ca": str(self.certs.ca),
            "admin_cert": str(self.certs.admin_cert),
            "admin_key": str(self.certs.admin_key),
        }

    def stop(self) -> None:
        """Stop the components in reverse order; safe to call twice and from signal handlers.

        Each gets :data:`TEARDOWN_GRACE` seconds after SIGTERM, then SIGKILL: the cluster is thrown
        away with its data directory, so the apiserver's graceful drain (1.2 s typically, up to its
        10 s when watches stay open) would buy nothing but a slower end of every run (it took 0.55 s
        with half a second each; now ~0.1 s), and all of them together (:func:`stop_together`)."""
        # Kept in the list until stopped: a second call (a signal handler's) stops them again, safely.
        stop_together(self._processes[::-1], grace=TEARDOWN_GRACE)
        self._processes.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
