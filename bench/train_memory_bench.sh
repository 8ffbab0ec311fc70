#!/usr/bin/env bash
# Peak memory per process and throughput of `gqa uptrain` in each scaling mode, beside the figure
# `gqa uptrain --plan` predicts for it: plain, --checkpoint-activations, --shard-optimizer over 2
# gloo processes (sharing this machine), both, and bf16 weights with float32 masters. Peak RSS is
# GNU time's maximum resident set (for --nproc 2: the largest process). Tokens/s is measured
# between the first and the last logged step (loading excluded) and printed as a ratio to the
# plain mode of the same run. BENCH_ENV: variables for the measured runs, e.g.
# MALLOC_MMAP_THRESHOLD_=1048576, which makes glibc return every freed block of 1 MiB or more to
# the system, so that RSS follows the live tensors (--plan counts live tensors; by default glibc
# keeps freed blocks of up to 32 MiB in its heap, docs/benchmarks.md).
# usage: bench/train_memory_bench.sh [BUILD_DIR] [SHAPE 124m|350m] [DEVICE cpu|cuda] [STEPS] [BATCH] [SEQ]
#   124m: GPT-2 small (12 layers, d 768); 350m: GPT-2 medium (24 layers, d 1024); vocab 50257.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shape="${2:-124m}"
device="${3:-cpu}"
steps="${4:-4}"
batch="${5:-4}"
seq="${6:-256}"
gqa="$build/cli/gqa"
py="$root/.venv/bin/python"
work="${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gqa-train-mem-XXXXXX")}"
mkdir -p "$work"
model="$work/gpt2-$shape"
if [[ ! -f "$model/config.json" ]]; then
  "$py" - "$model" "$shape" "$work/tokens.bin" <<'PY'
import sys, numpy as np, torch, transformers as T
out, shape, tokens = sys.argv[1:4]
layers, d, heads = {"124m": (12, 768, 12), "350m": (24, 1024, 16)}[shape]
torch.manual_seed(0)
cfg = T.GPT2Config(n_layer=layers, n_embd=d, n_head=heads, n_positions=1024, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
T.GPT2LMHeadModel(cfg).save_pretrained(out)
np.random.default_rng(0).integers(0, 50257, 2_000_000, dtype=np.uint16).tofile(tokens)
PY
fi
common=(--data "$work/tokens.bin" --steps "$steps" --batch-size "$batch" --seq-len "$seq" --warmup 0 --quiet --device "$device"
        --force --save-every 1000000)
modes=("plain|1|" "checkpointing|1|--checkpoint-activations" "sharded|2|--shard-optimizer"
       "sharded+checkpointing|2|--shard-optimizer --checkpoint-activations" "bf16 weights|1|--dtype bf16")
printf "model\tmode\tprocesses\tpeak_rss_mib\tplan_mib\tplan/measured\ttokens_per_s\tvs_plain\n"
plain_tps=""
for entry in "${modes[@]}"; do
  IFS='|' read -r name nproc flags <<<"$entry"
  # shellcheck disable=SC2086
  plan=$("$gqa" uptrain "$model" --plan --nproc "$nproc" "${common[@]}" $flags --device-memory 1TiB | awk '$1=="peak"{print $2, $3}')
  plan_mib=$(awk -v v="${plan% *}" -v u="${plan#* }" 'BEGIN{m=(u=="GiB")?1024:(u=="MiB")?1:(u=="KiB")?1/1024:1/1048576; printf "%.0f", v*m}')
  out="$work/run"
  # shellcheck disable=SC2086
  env $BENCH_ENV /usr/bin/time -f "%M" -o "$work/rss" "$gqa" uptrain "$model" "$out" --nproc "$nproc" "${common[@]}" $flags >"$work/log" 2>&1 ||
    { cat "$work/log"; exit 1; }
  rss_mib=$(( $(tail -n 1 "$work/rss") / 1024 ))
  tps=$("$py" - "$out/train_log.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"train"' in l]
a, b = rows[0], rows[-1]
print(f"{(b['tokens'] - a['tokens']) / max(b['elapsed_s'] - a['elapsed_s'], 1e-9):.1f}")
PY
)
  [[ -z "$plain_tps" ]] && plain_tps="$tps"
  printf "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\n" "$shape" "$name" "$nproc" "$rss_mib" "$plan_mib" \
    "$(awk -v p="$plan_mib" -v r="$rss_mib" 'BEGIN{print p/r}')" "$tps" "$(awk -v t="$tps" -v p="$plain_tps" 'BEGIN{print t/p}')"
done
