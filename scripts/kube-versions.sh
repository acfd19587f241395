#!/usr/bin/env bash
# The Kubernetes versions `make setup` prepared: one directory per version under $KCS_CACHE/versions/
# (kube-apiserver, kube-controller-manager, etcd, kubectl), which is what KUBE_TEST_ASSETS names.
#   kube-versions.sh list             every version, oldest first
#   kube-versions.sh dir [VERSION]    the directory of VERSION (v1.32.0-rc.0, v1.32, 1.32), default the newest
# Exit 1 when none (or none matching) is there.
set -euo pipefail
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
root="$KCS_CACHE/versions"
list() {
  [ -d "$root" ] || return 0
  for d in "$root"/v*; do
    [ -x "$d/kube-apiserver" ] && basename "$d"
  done | sort -V
}
case "${1:-list}" in
  list) list ;;
  dir)
    want=${2:-}
    want=v${want#v}
    match=$(list | { if [ "$want" = v ]; then cat; else grep -E "^${want//./\\.}(\$|[.-])" || true; fi; } | tail -1)
    [ -n "$match" ] || { echo "kube-versions: no Kubernetes ${2:-version} in $root (run make setup)" >&2; exit 1; }
    echo "$root/$match"
    ;;
  *) echo "usage: $0 list | dir [VERSION]" >&2; exit 2 ;;
esac
