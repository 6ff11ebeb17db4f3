"""The real Kubernetes components and how to build and run them on this machine.

:mod:`.binaries` builds the pinned components from Go modules into the cache, :mod:`.pki` makes the
certificate authorities and the service-account signing key, :mod:`.controlplane` runs etcd,
kube-apiserver, kube-controller-manager and kube-scheduler, and :mod:`.node` a real node (kubelet,
containerd, kube-proxy, CNI, DNS, images). Knows flags and certificates, not providers or pytest.
"""
