#!/usr/bin/env bash
# The seed scenario, end to end, on three local clusters (`make demo`):
#   a management cluster (mc-mgmt-k8s, account 111111111111) mirrors a ConfigMap and a wildcard TLS
#   Secret into two follower clusters in other accounts (mc-project-k8s, mc-project2-k8s), reaching them
#   through an AWS web identity -> AssumeRole chain, exactly as the pod of manifests/mgmt/example does on EKS.
# Usage: scripts/demo.sh DIR   (DIR holds the testbed and the "pod"; everything is torn down at the end)
# Needs: `make setup` done, and `cargo build -p e2e -p kubeconfig-gen -p sync-daemon` (make demo does both).
set -euo pipefail

DIR=${1:?usage: scripts/demo.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug}
KCS_CACHE=${KCS_CACHE:-/var/cache/kubed-cross-sync}
# The Kubernetes version's own directory (make demo passes the newest prepared one): its binaries
# run the clusters and its kubectl talks to them.
export KUBE_TEST_ASSETS=${KUBE_TEST_ASSETS:-$(bash "$repo/scripts/kube-versions.sh" dir)}
KUBECTL=${KCS_KUBECTL:-$KUBE_TEST_ASSETS/kubectl}
# The manifests are rendered by kubectl 1.32's kustomize (v5) whatever the clusters' version, as `make lint`
# renders them: kubectl 1.20's own kustomize (v2.0) cannot read them. The clusters' kubectl applies the result.
KUSTOMIZE_KUBECTL=${KCS_KUSTOMIZE_KUBECTL:-$KCS_CACHE/kubectl-v1.32/kubectl}
for b in testbed kubeconfig-gen sync-daemon; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is not built (cargo build -p e2e -p kubeconfig-gen -p sync-daemon)" >&2; exit 2; }
done
[ -x "$KUBECTL" ] || { echo "demo: no kubectl at $KUBECTL (run make setup, or set KCS_KUBECTL)" >&2; exit 2; }
[ -x "$KUSTOMIZE_KUBECTL" ] || { echo "demo: no kubectl 1.32 at $KUSTOMIZE_KUBECTL (run make setup, or set KCS_KUSTOMIZE_KUBECTL)" >&2; exit 2; }

# ------------------------------------------------------------------ presentation helpers
bold=$'\033[1m'; dim=$'\033[2m'; green=$'\033[32m'; off=$'\033[0m'
[ -t 1 ] || { bold=; dim=; green=; off=; }
step_no=0
step_t0=0
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { d = b - a; if (d < 1) printf "%.0f ms", d * 1000; else printf "%.1f s", d }'; }
step() { step_no=$((step_no + 1)); step_t0=$(now); printf '\n%s== %d. %s%s\n' "$bold" "$step_no" "$*" "$off"; }
say() { printf '   %s\n' "$*"; }
done_() { printf '   %s✓ %s%s %s(%s)%s\n' "$green" "$*" "$off" "$dim" "$(since "$step_t0")" "$off"; }
show() {
  local shown=("$@"); [ "$1" = k ] && shown[0]=kubectl
  printf '%s   $ %s%s\n' "$dim" "${shown[*]}" "$off"
  "$@" 2>&1 | sed 's/^/     /'
}
# wait_until DESCRIPTION SECONDS COMMAND...: polls every 100 ms; prints how long it took, fails after SECONDS.
wait_until() {
  local what=$1 limit=$2; shift 2
  local t0; t0=$(now)
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "demo: timed out after ${limit}s waiting for: $what (logs: $DIR/pod/*.log)" >&2
      return 1
    fi
    sleep 0.1
  done
  printf '   %s✓ %s%s %s(%s)%s\n' "$green" "$what" "$off" "$dim" "$(since "$t0")" "$off"
}

# admin kubectl on the testbed (DIR/kubeconfig: one admin context per cluster)
k() { "$KUBECTL" --kubeconfig "$DIR/kubeconfig" "$@"; }

# drop_kind KIND: a multi-document YAML stream (kustomize's output) less the documents of that kind.
drop_kind() {
  awk -v kind="kind: $1" '
    function flush() { if (doc != "" && !skip) { printf "%s%s", sep, doc; sep = "---\n" } doc = ""; skip = 0 }
    $0 == "---" { flush(); next }
    { doc = doc $0 "\n"; if ($0 == kind) skip = 1 }
    END { flush() }'
}
# install CONTEXT DIR: `kubectl apply -k DIR`, rendered by kubectl 1.32 (KUSTOMIZE_KUBECTL) and applied by the
# clusters' kubectl; before Kubernetes 1.21 less the PodDisruptionBudget (policy/v1 is 1.21+).
install() {
  local ctx=$1 dir=$2 minor
  minor=$(k --context "$ctx" version -o json | jq -r '.serverVersion.minor' | tr -dc '0-9')
  "$KUSTOMIZE_KUBECTL" kustomize "$repo/$dir" |
    if [ "${minor:-0}" -lt 21 ]; then drop_kind PodDisruptionBudget; else cat; fi |
    k --context "$ctx" apply -f -
}
# deploy_args LIST INDEX: the args of a container of the applied Deployment (LIST initContainers or containers)
# as the kubelet passes them: $(VAR) expanded from the container's env, its values and the keys of the
# settings ConfigMap it names. $(POD_NAMESPACE) (the downward API) is left for the caller.
deploy_args() {
  local deploy cms
  deploy=$(k --context mc-mgmt-k8s -n kubed-cross-sync get deploy kubed-cross-sync -o json)
  cms=$(k --context mc-mgmt-k8s -n kubed-cross-sync get configmap -o json)
  jq -r --argjson cms "$cms" --arg list "$1" --argjson i "$2" '
    .spec.template.spec[$list][$i] as $c
    | ([$c.env[]? | {key: .name, value: (.value // (.valueFrom.configMapKeyRef as $r | if $r then
          first($cms.items[] | select(.metadata.name == $r.name) | .data[$r.key]) else null end))}]
       | map(select(.value != null)) | from_entries) as $env
    | $c.args[] | gsub("\\$\\((?<v>[A-Za-z_][A-Za-z0-9_]*)\\)"; $env[.v] // "$(\(.v))")' <<<"$deploy"
}

# ------------------------------------------------------------------ teardown, whatever happens
pids=()
cleanup() {
  local rc=$?
  printf '\n%s== teardown%s\n' "$bold" "$off"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -f "$DIR/state.json" ] && "$BIN/testbed" down --dir "$DIR" >/dev/null 2>&1 || true
  say "daemons stopped, clusters stopped (files kept in $DIR)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

demo_t0=$(now)
printf '%skubed-cross-sync demo%s: the seed scenario on three local clusters (state in %s)\n' "$bold" "$off" "$DIR"

# ------------------------------------------------------------------ 1. clusters + AWS
step "Start three clusters and the AWS emulation (moto: STS + EKS; EKS-style token checks)"
if [ -f "$DIR/state.json" ]; then "$BIN/testbed" down --dir "$DIR" >/dev/null 2>&1 || true; fi
rm -rf "$DIR"; mkdir -p "$DIR"
"$BIN/testbed" up --dir "$DIR" --aws >"$DIR/testbed-up.log" 2>&1 || { cat "$DIR/testbed-up.log" >&2; exit 1; }
show k config get-contexts -o name
say "each cluster's aws-auth maps kubed-master -> group kubed-cross-sync:master (mgmt) and"
say "kubed-follower -> group kubed-cross-sync:follower (followers); no RBAC is bound to them yet."
done_ "clusters ready"

# The pod, on this machine: its mounts under DIR/pod, its environment = the AWS endpoints of the testbed.
pod=$DIR/pod
mkdir -p "$pod/etc/kubed-cross-sync/aws" "$pod/srv/kubeconfig" "$pod/follower"
cp "$DIR/aws/credentials" "$pod/etc/kubed-cross-sync/aws/credentials" # stands in for the profiles ConfigMap
mapfile -t aws_env <"$DIR/env"
pod_env=(env -i "PATH=$BIN:/usr/bin:/bin" "${aws_env[@]}"
         "AWS_SHARED_CREDENTIALS_FILE=$pod/etc/kubed-cross-sync/aws/credentials")
podmap() { sed -e "s#/etc/kubed-cross-sync/aws#$pod/etc/kubed-cross-sync/aws#g" -e "s#/srv/kubeconfig#$pod/srv/kubeconfig#g"; }

# ------------------------------------------------------------------ 2. RBAC + the manifests
# Native sidecars (an initContainer with restartPolicy) need Kubernetes 1.29+: older ones get the overlay
# that makes kubeconfig-watch a plain container.
minor=$(k --context mc-mgmt-k8s version -o json | jq -r '.serverVersion.minor' | tr -dc '0-9')
mgmt=manifests/mgmt/example; if [ "${minor:-0}" -lt 29 ]; then mgmt=manifests/mgmt/example-plain-sidecar; fi
step "Install the manifests: $mgmt in mc-mgmt-k8s, manifests/follower in both followers"
if [ "${minor:-0}" -lt 21 ]; then say "(Kubernetes 1.$minor: without the PodDisruptionBudget, whose policy/v1 needs 1.21)"; fi
install mc-mgmt-k8s "$mgmt" | sed 's/^/     /'
for f in mc-project-k8s mc-project2-k8s; do install "$f" manifests/follower | sed "s/^/     $f: /"; done
say "(the Deployment never gets a node here; its pod is played by the processes below, with its args)"
done_ "installed"

# ------------------------------------------------------------------ 3. kubeconfig-gen
step "kubeconfig-gen (the initContainer): AWS profiles -> EKS -> one kubeconfig"
say "the profiles (seed-shaped: web identity root, one AssumeRole per follower account):"
grep -v '^\s*$' "$pod/etc/kubed-cross-sync/aws/credentials" | sed 's/^/     | /'
mapfile -t init_args < <(deploy_args initContainers 0 | podmap)
printf '%s   $ kubeconfig-gen %s%s\n' "$dim" "${init_args[*]}" "$off"
"${pod_env[@]}" kubeconfig-gen "${init_args[@]}" 2>&1 | sed 's/^/     /'
kc=$pod/srv/kubeconfig/kubeconfig
say "as the IAM roles, through the kubeconfig's exec plugin (kubeconfig-gen token):"
for ctx in mc-mgmt-k8s mc-project-k8s; do
  for what in "create configmaps -n prod" "create namespaces" "list pods -A"; do
    # shellcheck disable=SC2086 # $what is several words on purpose
    ans=$("${pod_env[@]}" "$KUBECTL" --kubeconfig "$kc" --context "$ctx" auth can-i $what 2>/dev/null || true)
    printf '     %-15s can %-27s %s\n' "$ctx" "$what?" "${ans:-no}"
  done
done
done_ "kubeconfig written: $("$KUBECTL" --kubeconfig "$kc" config get-contexts -o name | wc -l) contexts, current: $("$KUBECTL" --kubeconfig "$kc" config current-context)"

# ------------------------------------------------------------------ 4. sync-daemon
step "sync-daemon (the main container), with the Deployment's args"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mapfile -t run_args < <(deploy_args containers 0 | podmap |
  sed -e 's#^--metrics-addr=.*#--metrics-addr=127.0.0.1:'"$port"'#' -e 's#\$(POD_NAMESPACE)#kubed-cross-sync#' -e 's#^--log-format=json#--log-format=plain#')
printf '%s   $ sync-daemon %s%s\n' "$dim" "${run_args[*]}" "$off"
"${pod_env[@]}" sync-daemon "${run_args[@]}" >"$pod/sync-daemon.log" 2>&1 &
pids+=($!)
wait_until "/readyz answers 200 (caches synced, both followers answered)" 90 curl -fsS "http://127.0.0.1:$port/readyz"
show k --context mc-mgmt-k8s -n kubed-cross-sync get lease -o custom-columns=LEASE:.metadata.name,HOLDER:.spec.holderIdentity
done_ "running, leader (log: $pod/sync-daemon.log)"

# ------------------------------------------------------------------ 5. the seed's objects
step "Create the seed's ConfigMap and a wildcard TLS Secret in prod of mc-mgmt-k8s"
for c in mc-mgmt-k8s mc-project-k8s mc-project2-k8s; do k --context "$c" create namespace prod >/dev/null; done
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=*.my-company.io' \
  -keyout "$DIR/tls.key" -out "$DIR/tls.crt" >/dev/null 2>&1
k --context mc-mgmt-k8s apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: cross-acc-sync-demo
  namespace: prod
  annotations:
    kubed.appscode.com/sync-contexts: "mc-project-k8s,mc-project2-k8s"
data:
  foo: bar
  spam: eggs
YAML
k --context mc-mgmt-k8s -n prod create secret tls wildcard-my-company-io --cert "$DIR/tls.crt" --key "$DIR/tls.key" >/dev/null
k --context mc-mgmt-k8s -n prod annotate secret wildcard-my-company-io \
  kubed.appscode.com/sync-contexts=mc-project-k8s,mc-project2-k8s >/dev/null
say "created: configmap/cross-acc-sync-demo and secret/wildcard-my-company-io (kubernetes.io/tls),"
say "both annotated kubed.appscode.com/sync-contexts=mc-project-k8s,mc-project2-k8s"
for f in mc-project-k8s mc-project2-k8s; do
  wait_until "both arrived in $f" 30 bash -c "'$KUBECTL' --kubeconfig '$DIR/kubeconfig' --context $f -n prod get cm/cross-acc-sync-demo secret/wildcard-my-company-io"
done
show k --context mc-project-k8s -n prod get cm,secret -l kubed.appscode.com/origin.cluster=mc-mgmt -L kubed.appscode.com/origin.cluster
done_ "mirrored"

# ------------------------------------------------------------------ 6. update
step "Update the source: foo=bar -> foo=baz"
k --context mc-mgmt-k8s -n prod patch cm cross-acc-sync-demo --type merge -p '{"data":{"foo":"baz"}}' >/dev/null
for f in mc-project-k8s mc-project2-k8s; do
  wait_until "foo=baz in $f" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$DIR/kubeconfig' --context $f -n prod get cm cross-acc-sync-demo -o jsonpath='{.data.foo}')\" = baz ]"
done
done_ "propagated"

# ------------------------------------------------------------------ 7. drift repair
step "Delete a copy by hand in mc-project-k8s (kubed would leave it deleted)"
show k --context mc-project-k8s -n prod delete cm cross-acc-sync-demo
wait_until "the copy is back in mc-project-k8s" 30 k --context mc-project-k8s -n prod get cm cross-acc-sync-demo
done_ "repaired"

# ------------------------------------------------------------------ 8. the follower's own fan-out
step "The follower's own fan-out (the seed's last section): a second sync-daemon, inside mc-project-k8s"
k --context mc-project-k8s create namespace env-ahorbach >/dev/null
k --context mc-project-k8s label namespace env-ahorbach name=env-ahorbach sync/kubed-master=true >/dev/null
show k --context mc-project-k8s -n prod annotate cm cross-acc-sync-demo "kubed.appscode.com/sync=sync/kubed-master=true"
# In-cluster style: the follower's own daemon sees only its own cluster (here: its admin context).
k config view --minify --flatten --context mc-project-k8s >"$pod/follower/kubeconfig"
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
follower_args=(run --kubeconfig-file="$pod/follower/kubeconfig" --cluster-name=mc-project --metrics-addr="127.0.0.1:$port2")
printf '%s   $ sync-daemon %s%s\n' "$dim" "${follower_args[*]}" "$off"
env -i PATH="$BIN:/usr/bin:/bin" sync-daemon "${follower_args[@]}" >"$pod/follower-sync-daemon.log" 2>&1 &
pids+=($!)
wait_until "the copy fanned out to env-ahorbach in mc-project-k8s" 60 k --context mc-project-k8s -n env-ahorbach get cm cross-acc-sync-demo
k --context mc-mgmt-k8s -n prod patch cm cross-acc-sync-demo --type merge -p '{"data":{"foo":"qux"}}' >/dev/null
wait_until "a new source update (foo=qux) reaches env-ahorbach through both daemons" 30 bash -c \
  "[ \"\$('$KUBECTL' --kubeconfig '$DIR/kubeconfig' --context mc-project-k8s -n env-ahorbach get cm cross-acc-sync-demo -o jsonpath='{.data.foo}')\" = qux ]"
ann=$(k --context mc-project-k8s -n prod get cm cross-acc-sync-demo -o jsonpath='{.metadata.annotations.kubed\.appscode\.com/sync}')
say "the follower's own annotation on the copy survived the update: kubed.appscode.com/sync=$ann"
[ "$ann" = "sync/kubed-master=true" ]
if k --context mc-mgmt-k8s -n env-ahorbach get cm cross-acc-sync-demo >/dev/null 2>&1; then
  echo "demo: the follower pushed a copy back into the management cluster" >&2; exit 1
fi
say "and nothing flowed back into mc-mgmt-k8s"
done_ "fanned out"

# ------------------------------------------------------------------ 9. status
step "sync-daemon status: what an on-call engineer reads (read-only, from the same kubeconfig)"
status_args=(status --kubeconfig-file="$kc" --source-context=mc-mgmt-k8s --cluster-name=mc-mgmt --config-source-namespace=prod)
printf '%s   $ sync-daemon %s%s\n' "$dim" "${status_args[*]}" "$off"
"${pod_env[@]}" sync-daemon "${status_args[@]}" 2>/dev/null | sed 's/^/     /' || true
done_ "reported"

printf '\n%sAll steps passed in %s.%s\n' "$bold" "$(since "$demo_t0")" "$off"
