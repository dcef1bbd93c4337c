#!/usr/bin/env bash
# Generation-based evaluation on E2E NLG (issue 14 section 4): BLEU-4, NIST
# and ROUGE-L of greedy outputs of stories260K (a 260K-parameter toy model)
# on the first 50 distinct meaning representations of the E2E test set,
# before and after a brief LoRA fine-tune on the E2E development set (the
# shared folder has no E2E training split). Low scores are expected.
# Usage: experiments/e2e_generation/run.sh [build-dir]   (from the repository root)
set -euo pipefail
BUILD=${1:-build}
CLEAVE=$BUILD/bin/cleave
MODEL=../shared/models/stories260K.gguf
OUT=runs/e2e_generation
mkdir -p "$OUT"

score() {  # score NAME [--adapter FILE]
  local name=$1; shift
  "$CLEAVE" eval --model "$MODEL" "$@" --data ../shared/data/e2e/e2e_test.jsonl \
    --generate --limit 50 --max-tokens 64 --out "$OUT/$name.jsonl" | tee "$OUT/$name.log"
}

score base
"$CLEAVE" train --config configs/stories260k_medquad.yaml \
  --set data.train=../shared/data/e2e/e2e_valid.jsonl \
  --set data.mode=padding --set data.seq_len=128 --set data.batch_size=16 \
  --set train.steps=300 --set train.eval_every=100 --set train.log_every=50 \
  --set output.dir="$OUT/train" | tee "$OUT/train.log"
score lora --adapter "$OUT/train/adapter.gguf"
