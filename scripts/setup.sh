#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need, idempotently:
# Debian packages, kube-apiserver + kube-controller-manager v1.20.2 built from Debian's
# source package, Debian's kubectl 1.20, and a Python venv with moto and awscli.
# Heavy results are cached outside the repo under $KCS_CACHE (default /var/cache/kubed-cross-sync),
# keyed by version, so a second run takes seconds.
set -euo pipefail

KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
KUBE_SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
GO_VERSION=1.19
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mkdir -p "$KCS_CACHE"

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- Debian packages
debs=(etcd-server golang-${GO_VERSION}-go rsync make jq faketime curl ca-certificates
      golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
src_list=/etc/apt/sources.list.d/kubed-cross-sync-src.sources
need_update=0
if [ ! -f "$src_list" ]; then
  log "adding deb-src entries for Debian bookworm (needed for 'apt-get source kubernetes')"
  uris=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | head -1)
  sec_uris=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | grep security | head -1 || true)
  uris=${uris:-http://deb.debian.org/debian}
  sec_uris=${sec_uris:-http://deb.debian.org/debian-security}
  as_root tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: $uris
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $sec_uris
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
  log "apt-get update"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- kubectl 1.20 (Debian kubernetes-client)
# Another package may own /usr/bin/kubectl (e.g. a newer cloud-sdk one), so the Debian binary is
# unpacked into the cache instead of installed over it.
kubectl_dir="$KCS_CACHE/kubectl-$KUBE_SRC_VERSION"
if [ ! -x "$kubectl_dir/kubectl" ]; then
  log "unpacking Debian's kubernetes-client $KUBE_SRC_VERSION"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq "kubernetes-client=$KUBE_SRC_VERSION" && dpkg-deb -x kubernetes-client_*.deb x)
  mkdir -p "$kubectl_dir"
  cp "$tmp/x/usr/bin/kubectl" "$kubectl_dir/kubectl"
  rm -rf "$tmp"
fi
ln -sfn "$kubectl_dir" "$KCS_CACHE/kubectl"

# ---------------------------------------------------------------- kube-apiserver / kube-controller-manager
if [ -n "${KUBE_TEST_ASSETS:-}" ]; then
  for b in kube-apiserver kube-controller-manager; do
    [ -x "$KUBE_TEST_ASSETS/$b" ] || { log "KUBE_TEST_ASSETS=$KUBE_TEST_ASSETS has no executable $b"; exit 1; }
  done
  log "using prebuilt binaries from KUBE_TEST_ASSETS=$KUBE_TEST_ASSETS"
else
  key="kube-$KUBE_SRC_VERSION-go$GO_VERSION-$(cat /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/json-iterator/go/*.go 2>/dev/null | sha256sum | cut -c1-8)"
  out="$KCS_CACHE/$key"
  if [ ! -x "$out/kube-apiserver" ] || [ ! -x "$out/kube-controller-manager" ]; then
    log "building kube-apiserver and kube-controller-manager v1.20.2 from Debian's source package (~8-15 min, once)"
    work="$KCS_CACHE/build-src"
    rm -rf "$work"; mkdir -p "$work"
    (cd "$work" && apt-get source -qq --download-only "kubernetes=$KUBE_SRC_VERSION" >/dev/null)
    tarball=$(ls "$work"/kubernetes_*.orig.tar.* | head -1)
    mkdir -p "$work/src"
    tar -xf "$tarball" -C "$work/src" --strip-components=1
    # The vendored reflect2 1.0.1 crashes under Go >= 1.18 (json-iterator SIGSEGV): use Debian's copies.
    for d in github.com/modern-go/reflect2 github.com/json-iterator/go; do
      rm -rf "$work/src/vendor/$d"
      cp -a "/usr/share/gocode/src/$d" "$work/src/vendor/$d"
    done
    (cd "$work/src" && PATH=/usr/lib/go-$GO_VERSION/bin:$PATH CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
       GOCACHE="$KCS_CACHE/gocache" make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1) || {
      tail -40 "$work/build.log" >&2; log "kube build failed (full log: $work/build.log)"; exit 1; }
    mkdir -p "$out.tmp"
    cp "$work/src/_output/local/bin/linux/amd64/kube-apiserver" "$work/src/_output/local/bin/linux/amd64/kube-controller-manager" "$out.tmp/"
    rm -rf "$out"; mv "$out.tmp" "$out"
    rm -rf "$work"
  fi
  ln -sf /usr/bin/etcd "$out/etcd"
  ln -sfn "$out" "$KCS_CACHE/kube"
  log "kube binaries: $out"
fi

# ---------------------------------------------------------------- Python venv (moto, awscli, linters)
req="$repo/tests/aws/requirements.txt"
venv="$KCS_CACHE/venv-$(sha256sum "$req" | cut -c1-12)"
if [ ! -f "$venv/.complete" ]; then
  log "creating the Python venv with moto and awscli"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$KCS_CACHE/venv"
# The packaging linters (hadolint, kubernetes-validate, checkov) live in a venv of their own.
KCS_CACHE="$KCS_CACHE" bash "$here/lint-tools.sh" >/dev/null
log "ready (cache: $KCS_CACHE)"
