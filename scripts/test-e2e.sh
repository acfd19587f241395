#!/usr/bin/env bash
# The end-to-end suite (every test binary of package e2e) once per Kubernetes version, each version on
# testbeds of its own, with the kubectl of that version. Run by `make test` after the unit tests.
#   KUBE_TEST_ASSETS=DIR   (set by you) only the binaries in DIR
#   KUBE_VERSIONS="1.20 1.32"   only these of the versions `make setup` prepared (default: all of them)
# Extra arguments go to `cargo test` (e.g. `-- --test-threads 1`). Prints the time per version; exits 1 if
# any version failed (all versions run regardless).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
CARGO=${CARGO:-cargo}

dirs=()
if [ -n "${KUBE_TEST_ASSETS:-}" ]; then
  dirs=("$KUBE_TEST_ASSETS")
elif [ -n "${KUBE_VERSIONS:-}" ]; then
  for v in ${KUBE_VERSIONS//,/ }; do
    d=$(bash "$repo/scripts/kube-versions.sh" dir "$v") || exit 1
    dirs+=("$d")
  done
else
  for v in $(bash "$repo/scripts/kube-versions.sh" list); do dirs+=("$KCS_CACHE/versions/$v"); done
fi
[ ${#dirs[@]} -gt 0 ] || { echo "test-e2e: no Kubernetes binaries prepared (run make setup)" >&2; exit 1; }

summary=()
failed=0
for d in "${dirs[@]}"; do
  version=$("$d/kube-apiserver" --version 2>/dev/null | awk '{print $2}')
  printf '\n\033[1m== end-to-end tests on Kubernetes %s (%s)\033[0m\n' "${version:-?}" "$d" >&2
  t0=$(date +%s)
  KUBE_TEST_ASSETS="$d" "$CARGO" test -p e2e --tests --no-fail-fast "$@"
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  [ $rc = 0 ] && result=passed || { result="FAILED (exit $rc)"; failed=1; }
  summary+=("$(printf '%-14s %5d s  %s' "${version:-$d}" "$secs" "$result")")
done
printf '\n\033[1m== end-to-end tests per Kubernetes version\033[0m\n' >&2
printf '  %s\n' "${summary[@]}" >&2
exit $failed
