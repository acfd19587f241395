#!/usr/bin/env bash
# Lints the packaging (run by `make lint`): the Dockerfile (hadolint, checkov), every kustomize overlay under
# manifests/ (rendered by the kustomize of kubectl 1.20 (v2) and of kubectl 1.32 (v5), which must agree,
# validated against the Kubernetes schemas with kubernetes-validate, scanned by checkov), the IAM Terraform
# (checkov) and the IAM JSON policies (syntax).
# checkov runs offline (--skip-download), so it reports no severities: any failed check fails the lint;
# an accepted finding is skipped in the manifest itself (checkov.io/skipN annotation) with its reason.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
KUBECTL_120=$KCS_CACHE/kubectl/kubectl
KUBECTL_132=$KCS_CACHE/kubectl-v1.32/kubectl
# Kubernetes schema versions to validate against: the oldest kubernetes-validate ships, the testbed's v1.32
# and a current EKS one. (v1.20, the testbed's other version, is checked by the API server itself:
# tests/tests/manifests/ applies the manifests on both testbed versions.)
K8S_VERSIONS=${K8S_VERSIONS:-1.25.0 1.32.0 1.33.0}

step() { printf '\033[1mlint:\033[0m %s\n' "$*" >&2; }
venv=$(bash "$repo/scripts/lint-tools.sh")
if [ ! -x "$KUBECTL_120" ] || [ ! -x "$KUBECTL_132" ]; then
  step "no kubectl 1.20 and 1.32 in $KCS_CACHE: running scripts/setup.sh first"
  bash "$repo/scripts/setup.sh"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "hadolint Dockerfile"
"$venv/bin/hadolint" --failure-threshold style Dockerfile

overlays=$(find manifests -name kustomization.yaml -printf '%h\n' | sort)
for kubectl in "$KUBECTL_120" "$KUBECTL_132"; do
  v=$("$kubectl" version --client -o json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')
  step "kustomize: render every overlay with kubectl $v"
  mkdir -p "$out/$v"
  for d in $overlays; do
    f="$out/$v/$(echo "$d" | tr / _).yaml"
    # kustomize v5 warns about the v2-era fields (bases, commonLabels) that kubectl 1.20 needs.
    "$kubectl" kustomize "$d" >"$f" 2>"$f.err" || { cat "$f.err" >&2; exit 1; }
    printf '  %-36s %s objects%s\n' "$d" "$(grep -c '^kind:' "$f")" "$(grep -q Warning "$f.err" && echo ' (deprecation warnings)')" >&2
  done
done
# The one expected difference: the hash suffix of generated ConfigMap names (v2 and v5 hash differently,
# so applying with a newer kubectl renames the profiles ConfigMap once and rolls the pods).
step "kustomize v2 (kubectl 1.20) and v5 (kubectl 1.32) render the same objects (generated-name hashes aside)"
"$venv/bin/python" - "$out"/v1.20.* "$out"/v1.32.* <<'PY'
import pathlib, re, sys, yaml
def objects(d):
    out = {}
    for f in sorted(pathlib.Path(d).glob("*.yaml")):
        text = f.read_text()
        for doc in [x for x in yaml.safe_load_all(text) if x]:
            m = re.fullmatch(r"(.+)-[a-z0-9]{10}", doc["metadata"]["name"])
            if doc["kind"] in ("ConfigMap", "Secret") and m:
                text = re.sub(re.escape(doc["metadata"]["name"]) + r"\b", m.group(1) + "-HASH", text)
        docs = [x for x in yaml.safe_load_all(text) if x]
        out[f.name] = sorted(docs, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return out
a, b = objects(sys.argv[1]), objects(sys.argv[2])
bad = [name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
if bad:
    sys.exit(f"the two kustomize versions render these overlays differently: {', '.join(bad)}")
PY
mkdir -p "$out/rendered"
cp "$out"/v1.32.*/*.yaml "$out/rendered/"

# Overlays with native sidecars (an initContainer's restartPolicy, Kubernetes 1.29+) are validated from 1.29
# on; before it, their plain-container variant (manifests/mgmt-plain-sidecar) is what those clusters apply.
NATIVE_SIDECAR_OVERLAYS="manifests/mgmt"
for v in $K8S_VERSIONS; do
  step "kubernetes-validate --strict (Kubernetes $v)"
  files=("$out"/rendered/*.yaml)
  if [ "$(printf '%s\n' "$v" 1.29.0 | sort -V | head -1)" != 1.29.0 ]; then
    for d in $NATIVE_SIDECAR_OVERLAYS; do
      skip="$out/rendered/$(echo "$d" | tr / _).yaml"
      files=("${files[@]/$skip}")
      printf '  %-36s skipped: native sidecars need 1.29\n' "$d" >&2
    done
  fi
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" ${files[@]}
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
