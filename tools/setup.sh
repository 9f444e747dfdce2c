#!/usr/bin/env bash
# Everything `make demo` and `make test` need on a fresh machine, done once and skipped when present:
# Debian packages (ffmpeg, nginx with the RTMP module, Prometheus; mmdebstrap, containerd, runc and the
# CNI plugins for `make image` / `make cluster`), the Python package with its test extras, and the Go-built
# kube-apiserver, etcd, kubectl, helm and the cluster's kubelet, controller-manager, scheduler and
# kube-proxy (tools/binaries.sh --cluster, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v nginx >/dev/null || missing+=(nginx)
ls /usr/lib/nginx/modules/ngx_rtmp_module.so >/dev/null 2>&1 || missing+=(libnginx-mod-rtmp)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
# `make image` and `make cluster` (the cluster suite runs in `make test`)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v containerd >/dev/null && command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${missing[@]}"
fi

# Re-install when the package is missing or pyproject.toml changed since the last install.
stamp=.dev/.pip-installed
if ! "$PYTHON" -c 'import ffrtmp_operator, ffrtmp_agent, kopf, pytest_timeout' 2>/dev/null \
   || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$PYTHON" -m pip install -q -e '.[test]'
  mkdir -p .dev && touch "$stamp"
fi

tools/binaries.sh --cluster >/dev/null
