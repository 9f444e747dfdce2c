#!/usr/bin/env bash
# `make kind`: a kind cluster (Docker, or podman with KIND_EXPERIMENTAL_PROVIDER=podman) named
# ${KIND_CLUSTER:-ffrtmp}, the image archive from `make image` loaded into its nodes, the nodes labelled as
# workers, and the chart installed by helm as on any cluster. Writes .dev/kind-kubeconfig; then
#   FFRTMP_TEST_KUBECONFIG=.dev/kind-kubeconfig FFRTMP_TEST_STORAGE_CLASS=standard make test-cluster
# runs the cluster suite there. kind pulls its node image (kindest/node) from a registry: on a machine
# without one, use `make cluster` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${KIND_CLUSTER:-ffrtmp}
die() { echo "error: $*" >&2; exit 1; }
command -v kind >/dev/null || die "kind is not installed (go install sigs.k8s.io/kind@latest; it needs Docker or podman)"
if ! command -v docker >/dev/null; then
  command -v podman >/dev/null || die "kind needs Docker or podman, and neither is installed"
  export KIND_EXPERIMENTAL_PROVIDER=podman
fi
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
archive=dist/ffrtmp-$version.tar
[ -f "$archive" ] || die "$archive is missing: run \`make image\`"
bin=$(tools/binaries.sh)
mkdir -p .dev
if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
  kind create cluster --name "$name" --wait 120s
fi
kind get kubeconfig --name "$name" > .dev/kind-kubeconfig
export KUBECONFIG=$PWD/.dev/kind-kubeconfig
kind load image-archive "$archive" --name "$name"
"$bin/kubectl" label nodes --all --overwrite ffrtmp.io/worker=true
"$bin/helm" upgrade --install ffrtmp helm/ffrtmp -n ffrtmp-system --create-namespace \
  --set "image.repository=localhost/ffrtmp,image.tag=$version,image.pullPolicy=Never" --wait --timeout 300s
"$bin/kubectl" rollout status -n ffrtmp-system daemonset/ffrtmp-agent --timeout=180s
echo "kind cluster $name ready: KUBECONFIG=$KUBECONFIG"
