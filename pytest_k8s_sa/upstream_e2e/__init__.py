"""Upstream Kubernetes' own service-account e2e specs (SIG Auth) as a peer gate.

``k8s-sa upstream-e2e`` builds ``k8s.io/kubernetes/test/e2e/auth`` into a test binary from a
pinned Go module (:mod:`.build`), builds the images its pod specs need where the cluster has no
registry (:mod:`.images`), runs the selected specs (:mod:`.run`) and reports them (:mod:`.results`).
Nobody on this project wrote these specs: they are the strongest evidence that a cluster treats
service-account tokens as Kubernetes does.
"""

from __future__ import annotations

from .build import E2EBinaries, find_e2e_binaries
from .results import E2EResult, SpecResult, parse_junit
from .run import DEFAULT_FOCUS, POD_SPECS, RunOptions, default_skip, run_specs

__all__ = [
    "DEFAULT_FOCUS",
    "POD_SPECS",
    "E2EBinaries",
    "E2EResult",
    "RunOptions",
    "SpecResult",
    "default_skip",
    "find_e2e_binaries",
    "parse_junit",
    "run_specs",
]
