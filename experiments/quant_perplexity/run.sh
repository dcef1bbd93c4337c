#!/usr/bin/env bash
# Perplexity cost of the int8 and q4 frozen bases against float32 on
# stories260K, with llama.cpp's llama-perplexity scheme (--ctx 256) on the
# TinyStories sample (the model's own domain) and on MedQuAD's CDC file.
# Usage: experiments/quant_perplexity/run.sh [BUILD_DIR]   (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${CLEAVE_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[[ -f $model ]] || { echo "needs $model" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The JSONL "text" fields, one story or answer after another, as plain text.
for name in tinystories/tinystories_sample medquad/medquad_cdc; do
  python3 -c 'import json,sys; print("\n\n".join(json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()))' \
    "$shared/data/$name.jsonl" > "$work/$(basename $name).txt"
done
echo "| data | base | perplexity | vs float32 |"
echo "|---|---|---:|---:|"
for data in tinystories_sample medquad_cdc; do
  ref=""
  for quant in none int8 q4; do
    ppl=$("$build/bin/cleave" eval --model "$model" --data "$work/$data.txt" --ctx 256 --quant "$quant" | tail -1 | awk '{print $2}')
    [[ -z $ref ]] && ref=$ppl
    echo "| $data | $quant | $ppl | $(awk -v p="$ppl" -v r="$ref" 'BEGIN{printf "%+.2f%%", (p/r-1)*100}') |"
  done
done
