"""A connected cluster and its facts, and the helpers that act on it through the API.

:mod:`.cluster` is :class:`~.cluster.Cluster` (issuer, audiences, capabilities, ``node_control``),
:mod:`.tokens` requests, decodes and reviews tokens, :mod:`.resources` creates and cleans up the
objects the fixtures hand out, :mod:`.types` the plain types the fixtures return. Knows the
providers' :class:`~pytest_k8s_sa.providers.base.ClusterInfo` it is built from, never a provider name.
"""
