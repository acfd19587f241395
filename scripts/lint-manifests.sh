#!/usr/bin/env bash
# Lints the packaging (run by `make lint`):
# - the Dockerfile: hadolint, checkov, and every base image pinned by digest;
# - every kustomization under manifests/, rendered by kubectl 1.32's kustomize (v5) with nothing at all on
#   stderr (a deprecated field is a warning there, so a failure here); a Component is rendered on top of the
#   example overlay of its tree (components/NAME -> ../../example), since it cannot be rendered alone;
# - every rendered object validated with kubernetes-validate --strict against the Kubernetes schemas of
#   K8S_VERSIONS (the testbed's v1.20 and v1.32, one before native sidecars, a current EKS one), less the
#   objects a version cannot have, each named in the output (see `leave_out` below);
# - checkov on the rendered objects, the Dockerfile and the IAM Terraform;
# - the IAM Terraform parsed (python-hcl2, which checkov brings): hashicorp/aws ~> 6.0, a required_version, none
#   of the arguments that provider deprecates; the IAM JSON policies and examples parse;
# - README's placeholder table lists exactly the <PLACEHOLDERS> that manifests/ uses.
# kubectl 1.20's own kustomize (v2.0) cannot render the v5 idioms (labels:, components, patches:): clusters of
# that age are given what kubectl 1.32 renders (`kubectl kustomize DIR | kubectl apply -f -`), as scripts/demo.sh
# and tests/tests/manifests/ do on the v1.20 testbed.
# checkov runs offline (--skip-download), so it reports no severities: any failed check fails the lint;
# an accepted finding is skipped in the manifest itself (checkov.io/skipN annotation) with its reason.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
KUBECTL_132=${KCS_KUSTOMIZE_KUBECTL:-$KCS_CACHE/kubectl-v1.32/kubectl}
K8S_VERSIONS=${K8S_VERSIONS:-1.20.0 1.25.0 1.32.0 1.33.0}

step() { printf '\033[1mlint:\033[0m %s\n' "$*" >&2; }
venv=$(bash "$repo/scripts/lint-tools.sh")
if [ ! -x "$KUBECTL_132" ]; then
  step "no kubectl 1.32 at $KUBECTL_132: running scripts/setup.sh first"
  bash "$repo/scripts/setup.sh"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "hadolint Dockerfile; base images pinned by digest"
"$venv/bin/hadolint" --failure-threshold style Dockerfile
awk 'toupper($1) == "FROM" {
       img = $2; for (i = 2; i <= NF; i++) if ($i !~ /^--/) { img = $i; break }
       if (toupper($(NF-1)) == "AS") stages[$NF] = 1
       digest = img; if (!sub(/.*@sha256:/, "", digest)) digest = ""
       if (!(img in stages) && !(digest ~ /^[0-9a-f]+$/ && length(digest) == 64)) { print "Dockerfile:" NR ": not pinned by digest: " img; bad = 1 }
     } END { exit bad }' Dockerfile >&2

# ------------------------------------------------------------------ render
v=$("$KUBECTL_132" version --client -o json | "$venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(d["clientVersion"]["gitVersion"], "kustomize", d.get("kustomizeVersion", "?"))')
step "kustomize: render every kustomization with kubectl $v, no warnings"
mkdir -p "$out/rendered"
for d in $(find manifests -name kustomization.yaml -printf '%h\n' | sort); do
  f="$out/rendered/$(echo "$d" | tr / _).yaml"
  src=$d
  if grep -q '^kind: Component' "$d/kustomization.yaml"; then
    src="$out/compose/$(echo "$d" | tr / _)"
    mkdir -p "$src"
    # kustomize takes relative paths only
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n' \
      "$(realpath --relative-to="$src" "$(dirname "$(dirname "$d")")/example")" \
      "$(realpath --relative-to="$src" "$d")" >"$src/kustomization.yaml"
  fi
  "$KUBECTL_132" kustomize "$src" >"$f" 2>"$f.err" || { cat "$f.err" >&2; exit 1; }
  if [ -s "$f.err" ]; then
    echo "  $d: kustomize printed on stderr (a deprecated field?):" >&2
    sed 's/^/    /' "$f.err" >&2
    exit 1
  fi
  printf '  %-44s %2s objects%s\n' "$d" "$(grep -c '^kind:' "$f")" "$([ "$src" = "$d" ] || echo ' (component, over ../../example)')" >&2
done

# ------------------------------------------------------------------ kubernetes-validate
# leave_out VERSION IN OUT: copies the rendered files, less what that Kubernetes version cannot have:
# - an overlay with native sidecars (an initContainer's restartPolicy), before 1.29: those clusters apply the
#   plain-sidecar variant (manifests/mgmt/components/plain-sidecar), validated there instead;
# - a PodDisruptionBudget (policy/v1), before 1.21;
# - objects of CRDs (the ServiceMonitor of monitoring.coreos.com): no schema ships with Kubernetes;
#   tests/tests/manifests/ checks its wiring to the Service.
leave_out() {
  "$venv/bin/python" - "$@" <<'PY'
import pathlib, sys, yaml
version = tuple(int(x) for x in sys.argv[1].split(".")[:2])
src, dst = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
dst.mkdir(parents=True, exist_ok=True)
CRD_GROUPS = ("monitoring.coreos.com",)  # any other group is validated (an unknown one fails below)
for f in sorted(src.glob("*.yaml")):
    docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
    name = f.stem.replace("_", "/")
    def native_sidecar(d):
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        return any("restartPolicy" in c for c in spec.get("initContainers", []))
    if version < (1, 29) and any(native_sidecar(d) for d in docs):
        print(f"  {name:44} left out: native sidecars need 1.29", file=sys.stderr)
        continue
    kept = []
    for d in docs:
        group = d["apiVersion"].rpartition("/")[0]
        what = f"{d['kind']} {d['metadata']['name']}"
        if group in CRD_GROUPS:
            print(f"  {name:44} {what} left out: a CRD's ({group}), no schema", file=sys.stderr)
        elif d["kind"] == "PodDisruptionBudget" and version < (1, 21):
            print(f"  {name:44} {what} left out: policy/v1 needs 1.21", file=sys.stderr)
        else:
            kept.append(d)
    if kept:
        (dst / f.name).write_text(yaml.safe_dump_all(kept, sort_keys=False))
PY
}
for k in $K8S_VERSIONS; do
  step "kubernetes-validate --strict (Kubernetes $k)"
  leave_out "$k" "$out/rendered" "$out/validate-$k"
  validate=("$venv/bin/kubernetes-validate")
  # The venv's kubernetes-validate ships schemas from 1.25 on; the older one beside it has 1.20 (lint-tools.sh).
  if [ "$(printf '%s\n' "$k" 1.25.0 | sort -V | head -1)" != 1.25.0 ]; then
    validate=(env PYTHONPATH="$venv/k8s-1.20" "$venv/bin/python" -m kubernetes_validate)
  fi
  "${validate[@]}" --strict --quiet -k "$k" "$out/validate-$k"/*.yaml 2>&1 | tee "$out/validate-$k.log" >&2
  # A kind without a schema is only a warning to kubernetes-validate: here it fails (leave_out names the ones
  # that may have none).
  if grep -q . "$out/validate-$k.log"; then exit 1; fi
done

# ------------------------------------------------------------------ IAM
step "IAM policies and examples parse; Terraform: hashicorp/aws ~> 6.0, nothing deprecated"
"$venv/bin/python" - manifests <<'PY'
import json, pathlib, re, sys, yaml
import hcl2  # python-hcl2 (bc-python-hcl2), a dependency of checkov
root = pathlib.Path(sys.argv[1])
for p in sorted(root.rglob("*.json")):
    json.loads(p.read_text())
for p in sorted(root.rglob("*.example.yaml")):
    assert isinstance(yaml.safe_load(p.read_text()), list), f"{p}: expected a mapRoles list"
bad = []
for p in sorted(root.rglob("*.tf")):
    text = p.read_text()
    tf = hcl2.loads(text)
    blocks = tf.get("terraform", [])
    if not any(b.get("required_version") for b in blocks):
        bad.append(f"{p}: no required_version")
    # python-hcl2 gives a block as a list of bodies, an attribute's object value as a dict (or a list of one)
    aws = [a for b in blocks for rp in b.get("required_providers", []) for a in [rp.get("aws")] if a]
    aws = [a[0] if isinstance(a, list) else a for a in aws]
    if [(a.get("source"), a.get("version")) for a in aws] != [("hashicorp/aws", "~> 6.0")]:
        bad.append(f"{p}: required_providers.aws is {aws}, not hashicorp/aws ~> 6.0")
    for res in tf.get("resource", []):
        for body in res.get("aws_iam_role", {}).values():
            for arg in ("inline_policy", "managed_policy_arns"):
                if arg in body:
                    bad.append(f"{p}: aws_iam_role {arg} is deprecated (aws_iam_role_policy, aws_iam_role_policy_attachment)")
    for m in re.finditer(r"data\.aws_region\.\w+\.name\b", text):
        bad.append(f"{p}: {m.group(0)} is deprecated in hashicorp/aws 6 (.region)")
if bad:
    sys.exit("\n".join(bad))
PY

step "README lists every placeholder of manifests/ (and no other)"
"$venv/bin/python" - manifests README.md <<'PY'
import pathlib, re, sys
used = {}
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*")):
    if p.is_file():
        for m in re.findall(r"<[A-Z][A-Z0-9_]*>", p.read_text()):
            used.setdefault(m, []).append(str(p))
listed = set(re.findall(r"^\| `(<[A-Z][A-Z0-9_]*>)` \|", pathlib.Path(sys.argv[2]).read_text(), re.M))
missing = sorted(set(used) - listed)
stale = sorted(listed - set(used))
for m in missing:
    print(f"  {m} (in {', '.join(sorted(set(used[m])))}) is not in README's placeholder table", file=sys.stderr)
for m in stale:
    print(f"  {m} is in README's placeholder table but nowhere in manifests/", file=sys.stderr)
if missing or stale:
    sys.exit(1)
print(f"  {len(listed)} placeholders", file=sys.stderr)
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
