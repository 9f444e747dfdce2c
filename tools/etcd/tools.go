//go:build tools

// Package tools pins etcd's server module; its module root is the etcd main package.
package tools

import (
	_ "go.etcd.io/etcd/server/v3/embed"
)
