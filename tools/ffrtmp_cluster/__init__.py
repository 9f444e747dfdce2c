"""`make image` and `make cluster`: the ffrtmp image built here without a registry, and a real Kubernetes
cluster on this machine (etcd, kube-apiserver, controller-manager, scheduler, kube-proxy, and kubelet +
containerd nodes) with the chart installed by `helm install`, as a user would on kind.
"""
