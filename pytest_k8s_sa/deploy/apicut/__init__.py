"""The API cut: a proxy between a workload and the kube-apiserver that a check can break on demand.

One home, two modes: :mod:`.process_mode` runs the cut inside the suite's process (``FlakyApi``) and
holds the control both modes share (``ApiCutControl``); :mod:`.pod_mode` runs the same program as a
pod and re-points the callee's in-cluster API address at it. The program itself is the stdlib
workload :mod:`pytest_k8s_sa.workloads.api_cut`, which ships to pods in the code ConfigMap.
"""
