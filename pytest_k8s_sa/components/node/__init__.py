"""A real Kubernetes node on this machine, without Docker and without a registry (``local-node``).

The node runs the parts kind runs, built from Go modules or taken from Debian packages, inside a
network namespace of its own; the control plane (:mod:`pytest_k8s_sa.components.controlplane`) stays on the
host and listens on the host end of the node's veth pair.

One module per concept:

* :mod:`.host` - prerequisites (Linux, root, cgroups, Debian packages) and the command runner.
* :mod:`.network` - the egress guard, the network namespace, veth pair, routes and the CNI config.
* :mod:`.images` - the OCI archive writer and the locally built pause, CoreDNS and python images.
* :mod:`.containerd` - containerd's configuration, process and ``ctr`` helpers.
* :mod:`.kubelet` - node PKI, kubeconfigs, kubelet / kube-proxy / kube-scheduler configuration.
* :mod:`.dns` - cluster DNS (CoreDNS) as a Deployment and the ``kube-dns`` Service.
* :mod:`.node` - :class:`~.node.LocalNode`: start in a safe order, stop, sweep a crashed run.

Decisions (measured on Debian 12, kernel 6.18, cgroup v1 hybrid, no systemd, 2 cores):

* **Kubernetes v1.37.2** kubelet, kube-proxy, kube-scheduler from the same pinned wrapper module
  as the control plane (plus the three ``tool`` lines), with the same build tags so the Go build
  cache is shared.
* **containerd v2.3.7** (the LTS line) built from the Go module proxy, not Debian's 1.6.20:
  containerd 1.6 is end of life and lacks the CRI ``RuntimeConfig`` call; kubelet 1.37 still falls
  back to its own ``cgroupDriver`` (``cmd/kubelet/app/server.go``), but that fallback is removed in
  1.38 (KEP-4033). runc (1.1.5) and the CNI plugins (1.1.1, ``/usr/lib/cni``) come from Debian.
* **cgroup v1 with ``failCgroupV1: false``**: this VM kind cannot switch to cgroup v2 (the memory
  controller is held by the machine's own supervisor). kubelet 1.37 refuses v1 by default but only
  warns with the flag off (KEP-5573). Future kubelets may drop v1: pin 1.37 here.
* **cgroupfs driver**: PID 1 is not systemd. containerd reports ``cgroupfs`` through CRI.
  Everything the node creates lives under the cgroup ``/k8s-sa-node`` in every hierarchy.
* **``restrict_oom_score_adj = true``** in containerd: the root user here lacks CAP_SYS_RESOURCE,
  so the pause container's oom_score_adj of -998 would make every sandbox fail.
* **Addresses only from 198.18.0.0/15** (RFC 2544, network testing), an ``unreachable`` host route
  for the whole /15 and REJECT rules for any such packet leaving by another interface, installed
  and verified *before* anything uses those addresses: nothing of the node can leave the machine.
* **No registry**: pause (own Go program), CoreDNS and python (Debian bookworm via mmdebstrap)
  images are written as OCI archives and imported; containerd's registry config sends every pull
  to a closed loopback port, so a stray pull fails at once and locally.
* One node per machine at a time (kubelet and containerd use a few fixed host paths), guarded by a
  machine-wide lock.
"""
