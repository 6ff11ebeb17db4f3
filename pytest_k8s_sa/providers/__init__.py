"""How a cluster is obtained, and the only place that knows provider names.

:mod:`.base` is the contract (``Provider``, ``ClusterInfo``, ``Capabilities``, ``NodeControl``),
:mod:`.registry` the table of providers built from :mod:`.settings` (the resolved options), and one
module per provider (:mod:`.local`, :mod:`.local_node`, :mod:`.kind`, :mod:`.kubeconfig`). Uses the
components below (control plane, node, kind's engine/tool/image in :mod:`pytest_k8s_sa.kind`).
"""
