"""kind without a registry: a Docker engine started on demand, the ``kind`` binary and a node image
built on this machine, and the cluster configuration the project creates kind clusters with.

* :mod:`.docker` starts Debian's ``dockerd`` with the project's ``daemon.json`` when no engine
  answers (root only), behind an egress guard, and stops it by pid.
* :mod:`.tool` builds the ``kind`` binary from its Go module (``sigs.k8s.io/kind``), cached.
* :mod:`.nodeimage` builds ``kindest/node:v<version>`` from the project's own binaries, Debian
  packages and the files in ``files/``; every image kubeadm expects is imported into it.
* :mod:`.config` writes the kind cluster configuration (pod and service subnets).
"""
