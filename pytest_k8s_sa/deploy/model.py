"""The deployed workloads: what a deployment is, whichever way it was made.

:class:`Workload` is one reference workload (identity, URL, token file), :class:`Deployment` the
three of one run. :mod:`.processes` and :mod:`.manifests` make them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from ..base.process import Process
from ..cluster.tokens import BoundObject, Token
from .projector import TokenProjector

AUDIENCE = "secret-store"
TOKEN_EXPIRATION_SECONDS = 600
API_TOKEN_REFRESH_SECONDS = 2.0
"""How often the API service re-reads its token file in these deployments (the default is 60 s);
short so the rotation check sees the new token quickly. The 60 s default is what the article's
5-minute ticker got wrong; either way the value is recorded as evidence."""


@dataclass
class Workload:
    """One deployed workload: its identity and where the test process reaches it."""

    name: str
    namespace: str
    service_account: str
    url: str
    pod: BoundObject | None = None
    projector: TokenProjector | None = None
    process: Process | None = None
    read_token: Callable[[], str] | None = field(default=None, repr=False)
    """How to read the token file the workload uses now (real pods: ``cat`` in the container)."""
    read_logs: Callable[[], str] | None = field(default=None, repr=False)

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def current_token(self) -> Token:
        """The token in the workload's token file right now (emulated or real kubelet alike)."""
        if self.projector is not None:
            return self.projector.current
        if self.read_token is None:
            raise RuntimeError(f"{self.name}: no way to read its token file")
        return Token.from_raw(self.read_token().strip())

    def get(
        self, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 15
    ) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=headers or {}, timeout=timeout)


@dataclass
class Deployment:
    """The three workloads of one run, and how to tear them down."""

    caller: Workload
    callee: Workload
    intruder: Workload
    fidelity: str
    audience: str = AUDIENCE
    api_token_refresh_seconds: float = API_TOKEN_REFRESH_SECONDS
    rotate_on_demand: Callable[[], Token] | None = field(default=None, repr=False)
    """Real pods: a way to make the real kubelet replace the API token file now, where one exists."""
    rotation_trigger: str = "emulated kubelet refresh"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def workloads(self) -> list[Workload]:
        return [self.caller, self.callee, self.intruder]

    @property
    def can_rotate_on_demand(self) -> bool:
        return self.caller.projector is not None or self.rotate_on_demand is not None

    def rotate_caller_token(self) -> Token:
        """Replace the API service's token file now and return the new token.

        Emulated kubelet: a refresh at once. Real kubelet (local-node): the kubelet is restarted,
        which empties its token cache, so it requests a new token and rewrites the file in the
        running pod. Elsewhere the real kubelet rotates only at 80% of the TTL (ROT-003).
        """
        if self.caller.projector is not None:
            return self.caller.projector.refresh_now()
        if self.rotate_on_demand is None:
            raise RuntimeError(
                "the kubelet of this cluster cannot be made to rotate on demand; it rotates at 80% of the TTL"
            )
        return self.rotate_on_demand()

    def logs(self) -> dict[str, str]:
        out = {}
        for workload in self.workloads:
            if workload.process is not None:
                with contextlib.suppress(OSError):
                    out[workload.name] = workload.process.log_path.read_text(errors="replace")
            elif workload.read_logs is not None:
                with contextlib.suppress(Exception):
                    out[workload.name] = workload.read_logs()
        return out
