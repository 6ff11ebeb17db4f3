"""The plain types the fixtures hand out, usable without pytest (library code, benchmarks).

:mod:`pytest_k8s_sa.plugin.fixtures` re-exports them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from . import resources
from .tokens import BoundObject


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str
    uid: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str

    def bound(self) -> BoundObject:
        return BoundObject("Pod", self.name, self.uid)


class Names:
    """Names unique to this run and xdist worker, valid as Kubernetes object names."""

    def __init__(self, run_id: str) -> None:
        self._prefix = f"{run_id}-{resources.worker_id()}"
        self._counter = itertools.count(1)

    def __call__(self, stem: str) -> str:
        name = f"{stem}-{self._prefix}-{next(self._counter)}".lower()
        return name[-63:].lstrip("-")
