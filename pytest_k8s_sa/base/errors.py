"""The exceptions the library raises. Each message says what went wrong and what to do."""

from __future__ import annotations


class K8sSAError(Exception):
    """Base class: every error of this library is one, so callers can catch them together."""


class BinaryNotFoundError(K8sSAError):
    """A Kubernetes component binary is missing and could not be built."""


class BuildError(K8sSAError):
    """Building the Kubernetes components from Go modules failed."""


class ClusterUnreachableError(K8sSAError):
    """The cluster named by a kubeconfig (or a provider) does not answer."""
