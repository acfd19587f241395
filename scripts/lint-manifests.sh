#!/usr/bin/env bash
# Lints the packaging (run by `make lint`): the Dockerfile (hadolint, checkov), every kustomize overlay under
# manifests/ (rendered by kubectl 1.20's own kustomize, validated against the Kubernetes schemas with
# kubernetes-validate, scanned by checkov), the IAM Terraform (checkov) and the IAM JSON policies (syntax).
# checkov runs offline (--skip-download), so it reports no severities: any failed check fails the lint;
# an accepted finding is skipped in the manifest itself (checkov.io/skipN annotation) with its reason.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
KCS_KUBECTL=${KCS_KUBECTL:-$KCS_CACHE/kubectl/kubectl}
# Kubernetes schema versions to validate against: the oldest kubernetes-validate ships and a current EKS one.
# (v1.20, the testbed's, is checked by the API server itself: tests/tests/manifests.rs applies the manifests.)
K8S_VERSIONS=${K8S_VERSIONS:-1.25.0 1.33.0}

step() { printf '\033[1mlint:\033[0m %s\n' "$*" >&2; }
venv=$(bash "$repo/scripts/lint-tools.sh")
if [ ! -x "$KCS_KUBECTL" ]; then
  step "no kubectl 1.20 at $KCS_KUBECTL: running scripts/setup.sh first"
  bash "$repo/scripts/setup.sh"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "hadolint Dockerfile"
"$venv/bin/hadolint" --failure-threshold style Dockerfile

step "kustomize: render every overlay with $("$KCS_KUBECTL" version --client --short 2>/dev/null || echo kubectl)"
overlays=$(find manifests -name kustomization.yaml -printf '%h\n' | sort)
for d in $overlays; do
  f="$out/rendered/$(echo "$d" | tr / _).yaml"
  mkdir -p "$out/rendered"
  "$KCS_KUBECTL" kustomize "$d" >"$f"
  printf '  %-36s %s objects\n' "$d" "$(grep -c '^kind:' "$f")" >&2
done

for v in $K8S_VERSIONS; do
  step "kubernetes-validate --strict (Kubernetes $v)"
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$out"/rendered/*.yaml
done

step "IAM policies and examples parse"
"$venv/bin/python" - manifests <<'PY'
import json, pathlib, sys, yaml
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.json")):
    json.loads(p.read_text())
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.example.yaml")):
    assert isinstance(yaml.safe_load(p.read_text()), list), f"{p}: expected a mapRoles list"
PY

step "checkov (kubernetes, dockerfile, terraform)"
# The Terraform directories are scanned from a copy: checkov would otherwise walk the whole repository.
cp -r manifests/iam/terraform "$out/terraform"
cp Dockerfile "$out/rendered/Dockerfile"
for dir in "$out/rendered" "$out/terraform"; do
  "$venv/bin/checkov" --quiet --compact --skip-download --framework kubernetes dockerfile terraform \
    -d "$dir" | sed 's/^/  /' >&2
done
step "packaging lint passed"
