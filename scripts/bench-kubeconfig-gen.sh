#!/usr/bin/env bash
# kubeconfig-gen vs the seed's awscli script, against one private moto (numbers go to BENCHMARKS.md).
#   generate: 10 EKS clusters in 5 accounts (2 each), reached through a root profile + 5 AssumeRole profiles;
#             the seed's shape is `aws eks update-kubeconfig` once per cluster, management last.
#   token:    `kubeconfig-gen token` vs `aws eks get-token`, static credentials (no network for either).
# Usage: scripts/bench-kubeconfig-gen.sh [KUBECONFIG_GEN_BINARY]   (default: target/release, else target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
KCS_VENV=${KCS_VENV:-/var/cache/kubed-cross-sync/venv}
BIN=${1:-}
if [[ -z $BIN ]]; then
  BIN=target/release/kubeconfig-gen
  [[ -x $BIN ]] || BIN=target/debug/kubeconfig-gen
fi
BIN=$(realpath "$BIN")
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install -y hyperfine)" >&2; exit 2; }
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$KCS_VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null && break; sleep 0.1; done

export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=eu-central-1 AWS_DEFAULT_REGION=eu-central-1
export AWS_EC2_METADATA_DISABLED=true HOME=$WORK/home
export AWS_SHARED_CREDENTIALS_FILE=$WORK/credentials AWS_CONFIG_FILE=$WORK/config
mkdir -p "$HOME"; : >"$AWS_CONFIG_FILE"
{
  printf '[root]\naws_access_key_id = AKIDBENCHROOT\naws_secret_access_key = benchsecret\n'
  for a in 1 2 3 4 5; do
    printf '[acct%s]\nrole_arn = arn:aws:iam::10000000000%s:role/bench\nsource_profile = root\nrole_session_name = acct%s\n' "$a" "$a" "$a"
  done
} >"$AWS_SHARED_CREDENTIALS_FILE"
# Two clusters per account, created with that account's assumed-role keys (moto files them there).
"$KCS_VENV/bin/python" - <<'PY'
import boto3
for a in range(1, 6):
    s = boto3.Session(profile_name=f"acct{a}")
    eks = s.client("eks")
    for i in (1, 2):
        eks.create_cluster(name=f"c{a}-{i}", roleArn=f"arn:aws:iam::10000000000{a}:role/eks",
                           resourcesVpcConfig={"subnetIds": []})
PY

SEED=$WORK/seed.sh
{
  echo 'set -e'
  for a in 5 4 3 2 1; do for i in 2 1; do
    echo "\"$KCS_VENV/bin/aws\" eks update-kubeconfig --name c$a-$i --alias c$a-$i --profile acct$a --kubeconfig $WORK/seed.yaml >/dev/null"
  done; done
} >"$SEED"
hyperfine --warmup 1 --runs 5 --export-json "$WORK/generate.json" \
  -n "awscli update-kubeconfig x10 (seed script)" "bash $SEED" \
  -n "kubeconfig-gen generate (discovery)" "$BIN generate --kubeconfig $WORK/ours.yaml --replace --current-context c1-1 2>/dev/null"
grep -c 'name: c' "$WORK/ours.yaml" >/dev/null

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=benchsecret
unset AWS_ENDPOINT_URL
hyperfine -N --warmup 2 --runs 20 --export-json "$WORK/token.json" \
  -n "aws eks get-token" "$KCS_VENV/bin/aws --region eu-central-1 eks get-token --cluster-name c1-1 --output json" \
  -n "kubeconfig-gen token" "$BIN token --cluster-name c1-1 --region eu-central-1"

python3 - "$WORK/generate.json" "$WORK/token.json" <<'PY'
import json, sys, statistics
for f in sys.argv[1:]:
    rs = json.load(open(f))["results"]
    med = [statistics.median(r["times"]) for r in rs]
    for r, m in zip(rs, med):
        print(f"| {r['command']} | {m*1000:.1f} ms |")
    print(f"| ratio | {med[0]/med[1]:.1f}x |")
PY
