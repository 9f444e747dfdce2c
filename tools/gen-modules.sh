#!/usr/bin/env bash
# Regenerates tools/k8s/go.mod and tools/etcd/go.mod for the versions in versions.env.
# k8s.io/kubernetes replaces its staging modules with local paths, which a dependent module cannot
# follow, so every staging module is replaced here by its published v0.x twin at the matching version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
export GOFLAGS=-mod=mod
staging_version="v0.${K8S_VERSION#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')

cd "$here/k8s"
rm -f go.mod go.sum
go mod init ffrtmp.io/tools/k8s >/dev/null 2>&1
go mod edit -go=1.24.0
go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
for m in $(grep -oE '^\s+k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'); do
  go mod edit -replace="$m=$m@$staging_version"
done
go mod tidy

cd "$here/etcd"
rm -f go.mod go.sum
go mod init ffrtmp.io/tools/etcd >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
go mod tidy
