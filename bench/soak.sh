#!/usr/bin/env bash
# Soak benchmark (reliability issue): SITES `cleave client` processes against
# one `cleave aggregator` and one `cleave split-server` (SFL-V1, u_shaped) over
# TLS on 127.0.0.1 for MINUTES minutes, on the demo's small random model with
# one local step per round. The resident memory of both services is sampled
# every 10 s into OUT/rss.csv; OUT/soak.md says how many rounds closed, whether
# any failed, and how far each service's memory moved after the first
# minute (the warm-up: ZeroMQ pipes, TLS sessions and model buffers reach
# their working size).
#   bench/soak.sh [SITES] [MINUTES]        (defaults 100 and 10; from the repository root)
# AGGREGATOR_WRAP runs the aggregator under a profiler in the same process, so
# that the soak's SIGTERM reaches it (with GOMP_SPINCOUNT set, so that cleave
# does not re-execute itself out from under the profiler), e.g.
#   AGGREGATOR_WRAP="valgrind --tool=massif --massif-out-file=massif.out" bench/soak.sh 100 10
# Not a test: it takes minutes and is judged by eye (and by the bound stated
# in BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SITES=${1:-100}
MINUTES=${2:-10}
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-bench-out/soak}
rm -rf "$OUT"
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$CLEAVE" demo --out "$OUT/demo" --steps 1 --threads 1 > "$OUT/demo.log"
model="$OUT/demo/model.gguf"
data="$OUT/demo/train.jsonl"
"$CLEAVE" ca init --out "$OUT/ca" > /dev/null
issue() { "$CLEAVE" ca issue --ca "$OUT/ca" --role "$1" --name "$2" --out "$OUT/certs/$2" > /dev/null; }
secure() { echo "secure: {cert: $OUT/certs/$1/$1.crt, key: $OUT/certs/$1/$1.key, ca: $OUT/certs/$1/ca.crt, crl: $OUT/ca/crl.pem}"; }
issue split-server split-1
issue aggregator agg
for i in $(seq 1 "$SITES"); do issue client "site-$i"; done
lora="lora: {rank: 2, alpha: 4.0, targets: [q, v]}"

cat > "$OUT/split.yaml" <<YAML
model: $model
$lora
runtime: {threads: 1}
split_server: {bind: 'tcp://127.0.0.1:0', variant: sfl_v1}
$(secure split-1)
YAML
"$CLEAVE" split-server --config "$OUT/split.yaml" > "$OUT/split.log" 2>&1 &
split_pid=$!; pids+=("$split_pid")
until split=$(grep -o 'listening on tcp://[0-9.:]*' "$OUT/split.log" | awk '{print $3}') && [[ -n $split ]]; do
  kill -0 "$split_pid" || { cat "$OUT/split.log"; exit 1; }; sleep 0.2
done

per_round=$(( SITES / 5 > 0 ? SITES / 5 : 1 ))
cat > "$OUT/aggregator.yaml" <<YAML
model: $model
$lora
aggregator:
  bind: 'tcp://127.0.0.1:0'
  rounds: 1000000
  clients_per_round: $per_round
  min_clients: $per_round
  round_deadline_ms: 120000
  poll_interval_ms: 1000
  cut_layer: 1
  checkpoint_dir: $OUT/aggregator
  split_servers: ['$split']
  split_server_name: split-1
$(secure agg)
YAML
read -r -a aggregator_wrap <<< "${AGGREGATOR_WRAP:-}"
((${#aggregator_wrap[@]})) && aggregator_wrap=(env GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-1000}" "${aggregator_wrap[@]}")
"${aggregator_wrap[@]}" "$CLEAVE" aggregator --config "$OUT/aggregator.yaml" > "$OUT/aggregator.log" 2>&1 &
agg_pid=$!; pids+=("$agg_pid")
until agg=$(grep -o 'listening on tcp://[0-9.:]*' "$OUT/aggregator.log" | awk '{print $3}') && [[ -n $agg ]]; do
  kill -0 "$agg_pid" || { cat "$OUT/aggregator.log"; exit 1; }; sleep 0.2
done

for i in $(seq 1 "$SITES"); do
  cat > "$OUT/site-$i.yaml" <<YAML
model: $model
$lora
data: {train: $data, seq_len: 16, batch_size: 2}
train: {steps: 1, lr: 0.01, warmup_steps: 0, seed: $i}
runtime: {threads: 1}
split: {server: '$split', server_name: split-1, cut_layer: 1}
client: {aggregator: '$agg', aggregator_name: agg}
$(secure "site-$i")
YAML
  OMP_NUM_THREADS=1 "$CLEAVE" client --config "$OUT/site-$i.yaml" > "$OUT/site-$i.log" 2>&1 &
  pids+=("$!")
done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The aggregator's resident memory split into anonymous pages (heap, stacks:
# what a leak grows) and file pages (code and mapped files touched so far).
rss_parts_kib() { awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print a+0 "," f+0}' "/proc/$1/status" 2>/dev/null || echo "0,0"; }
echo "seconds,aggregator_rss_kib,split_server_rss_kib,rounds_closed,aggregator_anon_kib,aggregator_file_kib" > "$OUT/rss.csv"
start=$(date +%s)
end=$(( start + MINUTES * 60 ))
while (( $(date +%s) < end )); do
  closed=$(grep -c ' closed: ' "$OUT/aggregator.log" || true)
  echo "$(( $(date +%s) - start )),$(rss_kib "$agg_pid"),$(rss_kib "$split_pid"),$closed,$(rss_parts_kib "$agg_pid")" >> "$OUT/rss.csv"
  kill -0 "$agg_pid" && kill -0 "$split_pid" || break
  sleep 10
done
closed=$(grep -c ' closed: ' "$OUT/aggregator.log" || true)
failed=$(grep -c 'the run failed' "$OUT/aggregator.log" || true)
alive="both services alive"
kill -0 "$agg_pid" 2>/dev/null && kill -0 "$split_pid" 2>/dev/null || alive="a service died"
# Memory after the first minute: first, peak and last sample of each service.
summary=$(awk -F, 'NR > 1 && $1 >= 60 {
    if (!n++) { a0 = $2; s0 = $3 } a1 = $2; s1 = $3; if ($2 > am) am = $2; if ($3 > sm) sm = $3 }
  END { printf "aggregator %d -> %d KiB (peak %d, %+d KiB); split server %d -> %d KiB (peak %d, %+d KiB)",
        a0, a1, am, a1 - a0, s0, s1, sm, s1 - s0 }' "$OUT/rss.csv")
{
  echo "Command: \`bench/soak.sh $SITES $MINUTES\` on $(nproc) cores ($(date -u +%Y-%m-%d))."
  echo
  echo "- $SITES sites, $per_round per round, $MINUTES minutes: $closed rounds closed, $failed failed runs, $alive."
  echo "- Resident memory after the first minute: $summary."
  echo "- Samples every 10 s in rss.csv."
} > "$OUT/soak.md"
cat "$OUT/soak.md"
