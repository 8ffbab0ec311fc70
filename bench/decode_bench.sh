#!/usr/bin/env bash
# Decode time per token of a converted model against its MHA source (gqa eval --speed, same run)
# and against transformers' generate on each (static cache where supported), same batch, prompt
# and new tokens, on this machine.
# usage: bench/decode_bench.sh GQA_DIR MHA_DIR [BATCHES] [PROMPT] [NEW] [THREADS] [DEVICE] [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
gqa_dir="$1" mha_dir="$2" batches="${3:-1,16,64}" prompt="${4:-128}" new="${5:-32}"
threads="${6:-$(nproc)}" device="${7:-cpu}" build="${8:-$root/build}"
py="$root/.venv/bin/python"
echo "gqa eval --speed ($gqa_dir vs $mha_dir, $device, $threads threads):"
OMP_NUM_THREADS=$threads "$build/cli/gqa" eval "$gqa_dir" --speed --baseline "$mha_dir" --batch-sizes "$batches" \
  --prompt-len "$prompt" --new-tokens "$new" | tail -n +2
for m in "$mha_dir" "$gqa_dir"; do
  echo "transformers generate ($m):"
  "$py" "$root/bench/decode_vs_transformers.py" "$m" "$batches" "$prompt" "$new" 3 "$threads" "$device" 2>/dev/null
done
