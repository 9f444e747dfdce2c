//go:build tools

// Package tools pins the Kubernetes commands built for the local stack and the tests.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
