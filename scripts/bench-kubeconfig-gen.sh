#!/usr/bin/env bash
# kubeconfig-gen vs the seed's awscli script, against one private moto (numbers go to BENCHMARKS.md).
#   generate: CLUSTERS EKS clusters spread over ACCOUNTS accounts and REGIONS regions, reached through a root
#             profile (static keys) + one AssumeRole profile per account. The seed's shape is
#             `aws eks update-kubeconfig --name C --alias C --profile P --region R` once per cluster,
#             management (c1) last; ours is one `kubeconfig-gen generate` with discovery (--regions when
#             REGIONS > 1). Both against the same moto, side by side, RUNS timed runs each after a warm-up.
#   watch:    `generate --watch --interval 10s` (the floor) in that world: the AWS requests of each steady
#             round, counted in moto's request log, and the CPU time of a round (/proc/PID/schedstat),
#             over WATCH_ROUNDS rounds of an unchanged world after the first.
#   token:    `kubeconfig-gen token` vs `aws eks get-token`, static credentials (no network for either).
# Knobs (environment): CLUSTERS=50 ACCOUNTS=25 REGIONS=2 (the issue-13 fleet; CLUSTERS=10 ACCOUNTS=5
#   REGIONS=1 is the first session's world), RUNS=5, WATCH_ROUNDS=5, PHASES="generate watch token".
# Usage: scripts/bench-kubeconfig-gen.sh [KUBECONFIG_GEN_BINARY]
#   (default: $CARGO_TARGET_DIR/release, else target/release, else target/debug; `make bench-kubeconfig-gen`)
set -euo pipefail
cd "$(dirname "$0")/.."
KCS_VENV=${KCS_VENV:-/var/cache/kubed-cross-sync/venv}
CLUSTERS=${CLUSTERS:-50} ACCOUNTS=${ACCOUNTS:-25} REGIONS=${REGIONS:-2}
RUNS=${RUNS:-5} WATCH_ROUNDS=${WATCH_ROUNDS:-5} PHASES=${PHASES:-generate watch token}
ALL_REGIONS=(eu-central-1 us-west-2 us-east-1 ap-southeast-1)
((REGIONS >= 1 && REGIONS <= ${#ALL_REGIONS[@]})) || { echo "REGIONS: 1 to ${#ALL_REGIONS[@]}" >&2; exit 2; }
((ACCOUNTS >= 1 && CLUSTERS >= 1)) || { echo "CLUSTERS and ACCOUNTS: at least 1" >&2; exit 2; }
BIN=${1:-}
if [[ -z $BIN ]]; then
  BIN=${CARGO_TARGET_DIR:-target}/release/kubeconfig-gen
  [[ -x $BIN ]] || BIN=target/release/kubeconfig-gen
  [[ -x $BIN ]] || BIN=target/debug/kubeconfig-gen
fi
BIN=$(realpath "$BIN")
AWS=$KCS_VENV/bin/aws
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install -y hyperfine)" >&2; exit 2; }
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# moto_server logs one line per request (werkzeug): the watch phase counts them.
"$KCS_VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
WATCHER=
trap 'kill $MOTO $WATCHER 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null && break; sleep 0.1; done

echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "awscli: $("$AWS" --version 2>&1)"
# The commit the tree is at (+changes: kubeconfig-gen/ differs from it; the binary may be built elsewhere).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- kubeconfig-gen 2>/dev/null || echo '+changes')
echo "kubeconfig-gen: $BIN ($("$BIN" --version), tree at $commit)"
echo "world: $CLUSTERS clusters, $ACCOUNTS accounts, $REGIONS region(s); $RUNS runs each"

export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=eu-central-1 AWS_DEFAULT_REGION=eu-central-1
export AWS_EC2_METADATA_DISABLED=true HOME=$WORK/home
export AWS_SHARED_CREDENTIALS_FILE=$WORK/credentials AWS_CONFIG_FILE=$WORK/config
mkdir -p "$HOME"; : >"$AWS_CONFIG_FILE"
account() { printf '%012d' $((100000000000 + $1)); }
{
  printf '[root]\naws_access_key_id = AKIDBENCHROOT\naws_secret_access_key = benchsecret\n'
  for a in $(seq "$ACCOUNTS"); do
    printf '[acct%s]\nrole_arn = arn:aws:iam::%s:role/bench\nsource_profile = root\nrole_session_name = acct%s\n' \
      "$a" "$(account "$a")" "$a"
  done
} >"$AWS_SHARED_CREDENTIALS_FILE"
# Cluster k (0-based) is c(k+1) in account k % ACCOUNTS + 1 and region (k / ACCOUNTS) % REGIONS: each account
# gets its clusters round-robin, one region after the other (50/25/2: c1..c25 in eu-central-1, c26..c50 in
# us-west-2, one per account and region; 10/5/1: two per account).
PLAN=$WORK/plan
for k in $(seq 0 $((CLUSTERS - 1))); do
  echo "c$((k + 1)) $((k % ACCOUNTS + 1)) ${ALL_REGIONS[$(((k / ACCOUNTS) % REGIONS))]}"
done >"$PLAN"
REGION_LIST=$(IFS=,; echo "${ALL_REGIONS[*]:0:$REGIONS}")
# Created with each account's assumed-role keys (moto files them in that account).
"$KCS_VENV/bin/python" - "$PLAN" <<'PY'
import sys, boto3
for line in open(sys.argv[1]):
    name, a, region = line.split()
    eks = boto3.Session(profile_name=f"acct{a}").client("eks", region_name=region)
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks", resourcesVpcConfig={"subnetIds": []})
PY
GEN_ARGS=(--replace --current-context c1)
((REGIONS > 1)) && GEN_ARGS+=(--regions "$REGION_LIST")

# Each side is one bash script that ends with `times` (bash's user and system time of its children, to the
# millisecond: the seed script's awscli processes, our one process), appended to cpu-NAME.txt once per run;
# hyperfine's JSON has CPU means only, /usr/bin/time counts in 10 ms steps, and medians are wanted. Both
# sides pay the same bash start.
summary() { # FILE.json NAME... : one table row per command (median wall, median CPU) and the ratios
  python3 - "$WORK" "$RUNS" "$@" <<'PY'
import json, re, sys, statistics
work, runs, f, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rs = json.load(open(f))["results"]
rows = []
secs = lambda t: sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", t))
for r, n in zip(rs, names):
    lines = [l for l in open(f"{work}/cpu-{n}.txt").read().splitlines() if l.strip()]
    cpu = [secs(l) for l in lines[1::2]][-runs:]  # `times`: the shell's line, then its children's
    rows.append((r["command"], statistics.median(r["times"]), min(r["times"]), max(r["times"]), statistics.median(cpu)))
for c, w, lo, hi, cpu in rows:
    print(f"| {c} | {w*1000:,.0f} ms ({lo*1000:,.0f}–{hi*1000:,.0f}) | {cpu*1000:,.0f} ms |")
print(f"| **ratio** | **{rows[0][1]/rows[1][1]:.1f}×** | **{rows[0][4]/rows[1][4]:.1f}×** |")
PY
}

if [[ " $PHASES " == *" generate "* ]]; then
  SEED=$WORK/seed.sh OURS=$WORK/ours.sh
  { echo 'set -e'; tac "$PLAN" | while read -r c a r; do
      echo "\"$AWS\" eks update-kubeconfig --name $c --alias $c --profile acct$a --region $r --kubeconfig $WORK/seed.yaml >/dev/null"
    done; echo "times >>$WORK/cpu-seed.txt"; } >"$SEED"
  { echo 'set -e'; echo "\"$BIN\" generate --kubeconfig $WORK/ours.yaml ${GEN_ARGS[*]} 2>/dev/null"
    echo "times >>$WORK/cpu-ours.txt"; } >"$OURS"
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/generate.json" \
    -n "awscli update-kubeconfig x$CLUSTERS (seed script)" "bash $SEED" \
    -n "kubeconfig-gen generate (discovery)" "bash $OURS"
  for f in seed ours; do
    n=$(grep -c '^- context:' "$WORK/$f.yaml") || true
    [[ $n == "$CLUSTERS" ]] || { echo "$f.yaml has $n contexts, not $CLUSTERS" >&2; exit 1; }
  done
  echo "load average after generate: $(cut -d' ' -f1-3 /proc/loadavg)"
  summary "$WORK/generate.json" seed ours
fi

if [[ " $PHASES " == *" watch "* ]]; then
  rounds() { grep -c ' unchanged' "$WORK/watch.log" || true; }
  KUBECONFIG_GEN_LOG=info NO_COLOR=1 "$BIN" generate --kubeconfig "$WORK/watch.yaml" "${GEN_ARGS[@]}" \
    --keep-going --watch --interval 10s 2>"$WORK/watch.log" &
  WATCHER=$!
  mark=$(wc -l <"$WORK/moto.log")
  until grep -q 'watch: round 1 done' "$WORK/watch.log"; do
    kill -0 $WATCHER 2>/dev/null || { cat "$WORK/watch.log" >&2; exit 1; }; sleep 0.1
  done
  first=$(tail -n +$((mark + 1)) "$WORK/moto.log")
  mark=$(wc -l <"$WORK/moto.log") cpu0=$(cut -d' ' -f1 /proc/$WATCHER/schedstat)
  until (($(rounds) >= WATCH_ROUNDS)); do
    kill -0 $WATCHER 2>/dev/null || { cat "$WORK/watch.log" >&2; exit 1; }; sleep 0.2
  done
  cpu1=$(cut -d' ' -f1 /proc/$WATCHER/schedstat) n=$(rounds)
  rss=$(grep -E '^(VmRSS|VmHWM)' /proc/$WATCHER/status | tr -s ' \t' ' ' | paste -sd, -)
  steady=$(tail -n +$((mark + 1)) "$WORK/moto.log")
  kill $WATCHER; wait $WATCHER || true; WATCHER=
  grep -q ' rewritten' "$WORK/watch.log" && { echo "an unchanged world was rewritten" >&2; exit 1; }
  count() { # requests in $1 of each kind: STS (POST /), ListClusters, DescribeCluster
    local sts list desc
    sts=$(grep -c '"POST / ' <<<"$1" || true)
    list=$(grep -cE '"GET /clusters(\?[^ ]*)? HTTP' <<<"$1" || true)
    desc=$(grep -cE '"GET /clusters/[^ ?]+ HTTP' <<<"$1" || true)
    echo "$sts $list $desc"
  }
  read -r s1 l1 d1 <<<"$(count "$first")"
  read -r s l d <<<"$(count "$steady")"
  echo "watch, round 1: $s1 STS, $l1 ListClusters, $d1 DescribeCluster"
  echo "watch, $n steady rounds: per round $((s / n)) STS (AssumeRole), $((l / n)) ListClusters," \
    "$((d / n)) DescribeCluster ($d in all); CPU $(((cpu1 - cpu0) / n / 1000)) µs per round; $rss"
  echo "load average after watch: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if [[ " $PHASES " == *" token "* ]]; then
  (
    export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=benchsecret
    unset AWS_ENDPOINT_URL
    hyperfine -N --warmup 2 --runs 20 --export-json "$WORK/token.json" \
      -n "aws eks get-token" "$AWS --region eu-central-1 eks get-token --cluster-name c1 --output json" \
      -n "kubeconfig-gen token" "$BIN token --cluster-name c1 --region eu-central-1"
  )
  python3 - "$WORK/token.json" <<'PY'
import json, sys, statistics
rs = json.load(open(sys.argv[1]))["results"]
med = [statistics.median(r["times"]) for r in rs]
for r, m in zip(rs, med):
    print(f"| {r['command']} | {m*1000:.1f} ms | {(r['user'] + r['system'])*1000:.1f} ms (mean) |")
print(f"| ratio | {med[0]/med[1]:.1f}x |")
PY
fi
