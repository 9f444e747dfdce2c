#!/usr/bin/env bash
# Prints a folder holding kube-apiserver, etcd, kubectl and helm, building any that are missing.
# Binaries come from $KUBEBUILDER_ASSETS when it has them, else from the cache
# (${FFRTMP_CACHE:-~/.cache/ffrtmp}/<tool>/<version>/), else they are built from the pinned Go modules
# in tools/k8s and tools/etcd (and helm's own module) and stored there. Build logs go to stderr.
# --check: build nothing; exit 1 naming the first missing binary (tests use this to fail fast).
# --cluster: also kubelet, kube-controller-manager, kube-scheduler and kube-proxy (`make cluster`).
set -euo pipefail
check_only=false cluster=false
for arg in "$@"; do
  case $arg in
    --check) check_only=true ;;
    --cluster) cluster=true ;;
    *) echo "usage: $0 [--check] [--cluster]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
cache=${FFRTMP_CACHE:-$HOME/.cache/ffrtmp}
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

k8s_dir="$cache/k8s/$K8S_VERSION"; etcd_dir="$cache/etcd/$ETCD_VERSION"; helm_dir="$cache/helm/$HELM_VERSION"

k8s_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=$K8S_VERSION"
  done
  echo "-s -w$f"
}

missing() {
  if $check_only; then
    local how="make tools"; $cluster && how="make setup"
    echo "$1 is not built yet: run \`$how\` (tools/binaries.sh$($cluster && echo " --cluster"))" >&2; exit 1
  fi
}

build_k8s() {  # $1: command name
  [ -x "$k8s_dir/$1" ] && return
  missing "$1"
  echo "building $1 $K8S_VERSION (several minutes on 2 cores)..." >&2
  mkdir -p "$k8s_dir"
  (cd "$here/k8s" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$k8s_dir/$1.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$k8s_dir/$1.tmp" "$k8s_dir/$1"
}

build_etcd() {
  [ -x "$etcd_dir/etcd" ] && return
  missing etcd
  echo "building etcd $ETCD_VERSION..." >&2
  mkdir -p "$etcd_dir"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$etcd_dir/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$etcd_dir/etcd.tmp" "$etcd_dir/etcd"
}

build_helm() {
  [ -x "$helm_dir/helm" ] && return
  missing helm
  echo "building helm $HELM_VERSION..." >&2
  mkdir -p "$helm_dir"
  local tmp; tmp=$(mktemp -d)
  GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$helm_dir/helm"; rmdir "$tmp"
}

out="$cache/assets/$K8S_VERSION-$ETCD_VERSION-$HELM_VERSION"
mkdir -p "$out"
assets=${KUBEBUILDER_ASSETS:-}
# KUBEBUILDER_ASSETS may be this very folder (CI exports what we printed): linking a file onto itself
# would replace it by a symlink loop
if [ -n "$assets" ] && [ "$(cd "$assets" 2>/dev/null && pwd -P)" = "$(cd "$out" && pwd -P)" ]; then assets=""; fi
bins=(kube-apiserver kubectl etcd helm)
$cluster && bins+=(kubelet kube-controller-manager kube-scheduler kube-proxy)
for bin in "${bins[@]}"; do
  if [ -n "$assets" ] && [ -x "$assets/$bin" ]; then
    src=$(cd "$assets" && pwd -P)/$bin
  else
    case $bin in
      kube-*|kubectl|kubelet) build_k8s "$bin"; src="$k8s_dir/$bin" ;;
      etcd) build_etcd; src="$etcd_dir/etcd" ;;
      helm) build_helm; src="$helm_dir/helm" ;;
    esac
  fi
  # relink only on change, atomically (rename): other test runs may be starting these binaries right now
  if [ "$(readlink "$out/$bin" || true)" != "$src" ]; then
    ln -sfn "$src" "$out/.$bin.$$" && mv -Tf "$out/.$bin.$$" "$out/$bin"
  fi
done
echo "$out"
