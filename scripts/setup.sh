#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need, idempotently:
# Debian packages, kube-apiserver + kube-controller-manager v1.20.2 built from Debian's
# source package, Debian's kubectl 1.20, kubectl 1.32 (Debian trixie's package, unpacked), the
# Kubernetes v1.32 set (kube-apiserver, kube-controller-manager, etcd) when a copy of it is at hand
# (KCS_KUBE_V132_DIR, default ../shared/kube/v1.32.0-rc.0 beside the checkout), and a Python venv
# with moto and awscli.
# Heavy results are cached outside the repo under $KCS_CACHE (default /var/cache/kubed-cross-sync),
# keyed by version, so a second run takes seconds. Each Kubernetes version ends up as one directory
# $KCS_CACHE/versions/<version>/ holding kube-apiserver, kube-controller-manager, etcd and kubectl:
# what KUBE_TEST_ASSETS names (scripts/kube-versions.sh lists them).
set -euo pipefail

KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
KUBE_SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
GO_VERSION=1.19
V132=v1.32.0-rc.0
V132_DIR=${KCS_KUBE_V132_DIR:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mkdir -p "$KCS_CACHE"

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
versions="$KCS_CACHE/versions"
mkdir -p "$versions"

# The machine's own Debian mirrors (deb822 .sources or one-line sources.list): "main" and
# "security". Every download goes through them; no registry host is written into this repository.
mirror() (
  set +e +o pipefail  # missing files and empty matches are fine here
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}'; } 2>/dev/null |
    if [ "$1" = security ]; then grep security; else grep -v security; fi | head -1
)
main_mirror=$(mirror main)
sec_mirror=$(mirror security)
[ -n "$main_mirror" ] || { log "no Debian mirror in /etc/apt/sources.list{,.d}: cannot install anything"; exit 1; }

# ---------------------------------------------------------------- Debian packages
debs=(etcd-server golang-${GO_VERSION}-go rsync make jq faketime curl ca-certificates xz-utils hyperfine
      golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
src_list=/etc/apt/sources.list.d/kubed-cross-sync-src.sources
need_update=0
if [ ! -f "$src_list" ]; then
  log "adding deb-src entries for Debian bookworm (needed for 'apt-get source kubernetes')"
  [ -n "$sec_mirror" ] || sec_mirror="${main_mirror%/debian}/debian-security"
  as_root tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: $main_mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $sec_mirror
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
  ln -sf "$kubectl_dir/kubectl" "$out/kubectl"
  ln -sfn "$out" "$KCS_CACHE/kube"
  ln -sfn "$out" "$versions/v1.20.2"
  log "kube binaries: $out"
fi

# ---------------------------------------------------------------- kubectl 1.32 (Debian trixie's kubectl)
# From the machine's own mirror through a private apt state (its own source list, lists and
# archive cache under $KCS_CACHE/apt-trixie): nothing of trixie is installed into this system,
# the package is only unpacked.
kubectl132_link="$KCS_CACHE/kubectl-v1.32"
if [ ! -x "$kubectl132_link/kubectl" ]; then
  log "fetching kubectl 1.32 (Debian trixie's kubectl package, unpacked into the cache)"
  apt_dir="$KCS_CACHE/apt-trixie"
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir"/{lists/partial,archives/partial,sources.list.d,preferences.d,deb}
  : >"$apt_dir/sources.list"
  cat >"$apt_dir/sources.list.d/trixie.sources" <<SRC
Types: deb
URIs: $main_mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
            -o "Dir::Etc::preferencesparts=$apt_dir/preferences.d" -o "Dir::State::Lists=$apt_dir/lists"
            -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" -qq download kubectl/trixie)
  deb=$(ls "$apt_dir"/deb/kubectl_*.deb | head -1)
  ver=$(dpkg-deb -f "$deb" Version)
  case "$ver" in
    1.32.*) ;;
    *) log "Debian trixie's kubectl is $ver, not 1.32: the kubectl/server skew the tests rely on would be wrong"; exit 1 ;;
  esac
  dest="$KCS_CACHE/kubectl-$ver"
  rm -rf "$dest" "$apt_dir/x"
  dpkg-deb -x "$deb" "$apt_dir/x"
  mkdir -p "$dest"
  cp "$apt_dir/x/usr/bin/kubectl" "$dest/kubectl"
  rm -rf "$apt_dir"
  ln -sfn "$dest" "$kubectl132_link"
fi

# ---------------------------------------------------------------- Kubernetes v1.32 set (optional)
# No registry ships a kube-apiserver: the v1.32 binaries come from a copy beside the checkout
# (xz files + SHA256SUMS of the unpacked binaries). Without it everything runs on v1.20.2 alone.
[ -n "$V132_DIR" ] || V132_DIR="$repo/../shared/kube/$V132"
if [ -f "$V132_DIR/SHA256SUMS" ]; then
  sums="$V132_DIR/SHA256SUMS"
  out132="$KCS_CACHE/kube-$V132-$(sha256sum "$sums" | cut -c1-8)"
  if [ ! -f "$out132/.complete" ]; then
    log "unpacking Kubernetes $V132 from $V132_DIR (checksums verified)"
    rm -rf "$out132"; mkdir -p "$out132"
    for b in kube-apiserver kube-controller-manager etcd; do
      xz -dc "$V132_DIR/$b.xz" >"$out132/$b"
      chmod 755 "$out132/$b"
    done
    (cd "$out132" && sha256sum --quiet -c "$sums") || { log "checksum mismatch in $out132"; rm -rf "$out132"; exit 1; }
    touch "$out132/.complete"
  fi
  ln -sf "$kubectl132_link/kubectl" "$out132/kubectl"
  ln -sfn "$out132" "$versions/$V132"
  log "kube binaries: $out132"
else
  log "no Kubernetes $V132 set at $V132_DIR (set KCS_KUBE_V132_DIR): tests run on v1.20.2 only"
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
