#!/usr/bin/env bash
# Creates (once, idempotently) the venv with the packaging linters — hadolint, kubernetes-validate,
# checkov — under $KCS_CACHE, keyed by scripts/lint-requirements.txt, and prints its path. Inside it,
# $venv/k8s-1.20 holds the older kubernetes-validate of scripts/lint-requirements-k8s-1.20.txt (the Kubernetes
# 1.20 schemas; run with PYTHONPATH=$venv/k8s-1.20), redone when that file changes.
# Called by scripts/setup.sh and by scripts/lint-manifests.sh, so `make lint` also works before `make setup`.
set -euo pipefail
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
here=$(cd "$(dirname "$0")" && pwd)
req="$here/lint-requirements.txt"
req120="$here/lint-requirements-k8s-1.20.txt"
venv="$KCS_CACHE/lint-venv-$(sha256sum "$req" | cut -c1-12)"
if [ ! -f "$venv/.complete" ]; then
  printf '\033[1mlint-tools:\033[0m creating the linters venv (hadolint, kubernetes-validate, checkov; ~1-2 min, once)\n' >&2
  mkdir -p "$KCS_CACHE"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
key120=$(sha256sum "$req120" | cut -c1-12)
if [ "$(cat "$venv/k8s-1.20/.complete" 2>/dev/null)" != "$key120" ]; then
  rm -rf "$venv/k8s-1.20"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$venv/k8s-1.20" -r "$req120" >&2
  echo "$key120" >"$venv/k8s-1.20/.complete"
fi
ln -sfn "$venv" "$KCS_CACHE/lint-venv"
echo "$venv"
