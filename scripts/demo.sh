#!/usr/bin/env bash
# make demo: the main job on an embedded default, end to end on the CPU.
#  1. A small MHA GPT-2-style model (8 heads, d 128, 4 layers, the project's 4096-token BPE)
#     pretrained by `gqa train` on English prose that scripts/make-corpus.sh extracts from Debian
#     packages — both once; later runs reuse them from the cache (~/.cache/gqa).
#  2. `gqa compare`: mean, weighted (WGQA), similarity (SimGQA) and svd at 4, 2 and 1 KV heads,
#     each uptrained with 5% of the pretraining tokens, then held-out perplexity, minimal pairs and
#     decode time per token at batch 1, 16 and 64, each model timed in turns with the MHA model.
# usage: scripts/demo.sh [BUILD_DIR] [--quick]   (--quick: a few steps of everything, for tests)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
[[ "$build" = /* ]] || build="$root/$build"
quick=0
[ "${2:-}" = "--quick" ] && quick=1
gqa="$build/cli/gqa"
cache_root="${GQA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gqa}"
corpus="${GQA_CORPUS_DIR:-$cache_root/corpus}"
bash "$root/scripts/make-corpus.sh" "$corpus"   # a no-op once the corpus is there
cache="$cache_root/demo"
steps=400 strategies=mean,weighted,similarity,svd kv=4,2,1 batches=1,16,64 eval_tokens=16384
if [ $quick = 1 ]; then
  cache="$(mktemp -d "${TMPDIR:-/tmp}/gqa-demo-XXXXXX")"
  trap 'rm -rf "$cache"' EXIT
  steps=8 strategies=mean,weighted kv=2 batches=1,4 eval_tokens=1024
fi
mkdir -p "$cache"
mha="$cache/gpt-mha"

echo "== 1. the MHA model: gqa train (cached in $mha after the first run)"
if [ ! -f "$mha/model/config.json" ]; then
  "$gqa" train "$mha" --config "$root/examples/demo/gpt-mha.json" --tokenizer "$root/examples/assets/bpe4096" \
    --data "$corpus/train.txt.gz" --valid "$corpus/valid.txt.gz" --seq-len 128 --batch-size 16 --steps $steps \
    --lr 2e-3 --warmup $((steps / 10)) --decay cosine --eval-sequences 32 --resume
fi
"$gqa" inspect "$mha/model" --context 1024 --batch 16

report="$cache/compare"
echo
echo "== 2. gqa compare: convert -> uptrain (5% of the pretraining tokens) -> evaluate, against MHA"
"$gqa" compare "$mha/model" "$report" --strategies $strategies --kv-heads $kv --uptrain-fraction 0.05 \
  --data "$corpus/train.txt.gz" --seq-len 128 --batch-size 16 --lr 3e-4 \
  --eval-data "$corpus/test.txt.gz" --eval-tokens $eval_tokens --pairs "$root/examples/assets/minimal_pairs/english.jsonl" \
  --calib "$corpus/valid.txt.gz" --speed-batches $batches --prompt-len 64 --new-tokens 16 --quiet
echo
cat "$report/report.md"
echo
if [ $quick = 0 ]; then
  echo "demo: the report is $report/report.md (charts: quality_vs_speed.svg, loss_curves.svg beside it)"
else
  test -s "$report/results.csv" && test -s "$report/quality_vs_speed.svg"
  # Re-running an interrupted or finished comparison reuses every finished cell.
  "$gqa" compare "$mha/model" "$report" --strategies $strategies --kv-heads $kv --uptrain-fraction 0.05 \
    --data "$corpus/train.txt.gz" --seq-len 128 --batch-size 16 --lr 3e-4 --eval-data "$corpus/test.txt.gz" \
    --eval-tokens $eval_tokens --pairs "$root/examples/assets/minimal_pairs/english.jsonl" --calib "$corpus/valid.txt.gz" \
    --speed-batches $batches --prompt-len 64 --new-tokens 16 --quiet | grep -c "done earlier, reused" | grep -qx 3
  echo "demo --quick: ok"
fi
